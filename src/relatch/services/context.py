"""Everything a use case needs, built once per process: settings, database, pool, clock.

Built and wired in relatch/app.py; per-process worker state lives in relatch/workers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from relatch.core.keyed import KeyRing
from relatch.core.passwords import DEFAULT_RULES, Rule
from relatch.services.limits import Limits, unlimited
from relatch.services.ports import Clock, MailRenderer, PasswordHasher
from relatch.settings import Settings
from relatch.storage.group_commit import GroupCommit


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pool: PasswordHasher  # infra/hashing_pool.py
    renderer: MailRenderer
    clock: Clock = utcnow
    password_rules: tuple[Rule, ...] = DEFAULT_RULES
    # Called inside the transaction that changes a password (revoke tokens, audit...).
    on_password_changed: list[Callable[[Session, Any, datetime], None]] = field(
        default_factory=list
    )
    # Shared rate limits (database or Redis): services/limits.py.
    limits: Limits = field(default_factory=unlimited)

    @cached_property
    def group_commit(self) -> GroupCommit:
        """The process's shared write transactions of cheap requests (reset requests)."""
        return GroupCommit(self.sessions)

    @property
    def keys(self) -> KeyRing:
        """Current secret first, then fallbacks (rotation): core/keyed.py."""
        return self.settings.keys

    def close(self) -> None:
        self.pool.close()
        self.limits.close()
        self.engine.dispose()
