"""Everything a use case needs, built once per process: settings, database, pool, clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from relatch.core.hashing import Argon2Params
from relatch.core.keyed import KeyRing
from relatch.core.passwords import DEFAULT_RULES, Rule
from relatch.services.hashing_pool import HashingPool
from relatch.services.limits import Limits, build_limits, unlimited
from relatch.services.ports import Clock, MailRenderer
from relatch.settings import Settings
from relatch.storage.db import make_engine, make_sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pool: HashingPool
    renderer: MailRenderer
    clock: Clock = utcnow
    password_rules: tuple[Rule, ...] = DEFAULT_RULES
    # Called inside the transaction that changes a password (revoke tokens, audit...).
    on_password_changed: list[Callable[[Session, Any, datetime], None]] = field(
        default_factory=list
    )
    # Ends the worker's wait early (shutdown). Reset requests do not set it: see
    # services/reset.request_reset (timing).
    wake: threading.Event = field(default_factory=threading.Event)
    # Shared rate limits (database or Redis): services/limits.py.
    limits: Limits = field(default_factory=unlimited)
    # When the worker of this process last pruned the audit trail (services/audit.py).
    audit_pruned_at: datetime | None = None

    @property
    def keys(self) -> KeyRing:
        """Current secret first, then fallbacks (rotation): core/keyed.py."""
        return self.settings.keys

    def close(self) -> None:
        self.pool.close()
        self.limits.close()
        self.engine.dispose()


def build(settings: Settings, clock: Clock = utcnow) -> Services:
    from relatch.mail.render import TemplateRenderer

    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    params = Argon2Params(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    svc = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        pool=HashingPool(params, settings.hash_workers, settings.hash_queue),
        renderer=TemplateRenderer(settings.public_url),
        clock=clock,
        limits=build_limits(settings, sessions),
    )
    # Issue 4: a reset or password change revokes every OAuth2 token and code of the account.
    from relatch.oauth.store import revoke_for_user

    svc.on_password_changed.append(revoke_for_user)
    return svc
