"""API keys of an account: create (shown once), list (prefixes only), revoke, authenticate.

API keys are the account's deliberate credentials: a password reset or change does not
revoke them (the "password changed" mail says how many remain active).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from relatch.core import apikeys, keyed
from relatch.core.errors import ApiKeyNotFound, InvalidInput, NotAuthenticated
from relatch.core.meta import RequestMeta
from relatch.services import audit, owner_notices
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts
from relatch.storage.db import rowcount, transaction
from relatch.storage.models_auth import ApiKey

log = logging.getLogger(__name__)

NAME_MAX = 100
# last_used_at is written at most this often per key. Write amplification: an API key is
# the credential of scripts and CI, which call many times a second; a write per request
# would take SQLite's single write lock on every authenticated GET (and bloat PostgreSQL
# with dead tuples) for a field people read to the minute.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    key: str  # the only time the whole key exists outside the caller's hands


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.prefix, row.created_at, row.last_used_at)


def create(svc: Services, user_id: int, name: str | None, meta: RequestMeta) -> NewKey:
    """A new key, audited (issue 8) with the account as actor, from HTTP or the CLI."""
    with audit.trail(svc, audit.APIKEY_CREATE, meta, account_id=user_id) as t:
        label = (name or "").strip()
        if len(label) > NAME_MAX:
            raise InvalidInput(f"The key name must be at most {NAME_MAX} characters")
        key, prefix = apikeys.generate()
        now = svc.clock()
        with transaction(svc.sessions) as s:
            row = ApiKey(
                user_id=user_id,
                name=label or f"key {now:%Y-%m-%d %H:%M}",
                prefix=prefix,
                digest=keyed.digest(svc.keys, keyed.API_KEY, key),
                created_at=now,
            )
            s.add(row)
            s.flush()
            info = _info(row)
            # Persistence after takeover: the owner hears of every new key (from HTTP or
            # an operator's CLI), in the transaction that creates it.
            owner = accounts.by_id(s, user_id)
            if owner is not None:
                owner_notices.api_key_created(svc, s, owner, info.name, info.prefix, now)
            t.write(s)  # in the transaction that creates the key
    # Logs carry the prefix only, never the key.
    log.info("api key %s created for account %s", prefix, user_id)
    return NewKey(info, key)


def list_keys(svc: Services, user_id: int) -> list[KeyInfo]:
    with svc.sessions() as s:
        rows = s.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.id)
        )
        return [_info(r) for r in rows]


def revoke(svc: Services, key_id: int, meta: RequestMeta, user_id: int | None = None) -> KeyInfo:
    """Revoke a live key; `user_id` limits it to that account's keys (HTTP), None is admin (CLI).

    Enumeration: another account's key and an unknown id give the same ApiKeyNotFound.
    Audited (issue 8) on the caller's account (the key's owner from the CLI); a refusal
    names only the caller, never the owner of someone else's key.
    """
    now = svc.clock()
    with (
        audit.trail(svc, audit.APIKEY_REVOKE, meta, account_id=user_id) as t,
        transaction(svc.sessions) as s,
    ):
        conditions = [ApiKey.id == key_id, ApiKey.revoked_at.is_(None)]
        if user_id is not None:
            conditions.append(ApiKey.user_id == user_id)
        row = s.scalars(select(ApiKey).where(*conditions)).first()
        if row is None:
            raise ApiKeyNotFound()
        # One conditional UPDATE: two parallel revokes cannot both report success.
        done = rowcount(s.execute(update(ApiKey).where(*conditions).values(revoked_at=now)))
        if done != 1:
            raise ApiKeyNotFound()
        info = _info(row)
        t.account_id = row.user_id
        t.write(s)  # in the transaction that revokes the key
    log.info("api key %s revoked", info.prefix)
    return info


_ACTIVE_COUNT = (
    select(func.count())
    .select_from(ApiKey)
    .where(ApiKey.user_id == bindparam("b_user_id"), ApiKey.revoked_at.is_(None))
)  # built once: every reset's notice asks (issue 12)


def active_count(s: Session, user_id: int) -> int:
    """Live keys of an account, inside the caller's transaction (for the notice mail)."""
    return int(s.scalar(_ACTIVE_COUNT, {"b_user_id": user_id}) or 0)


def user_from_key(svc: Services, presented: str) -> Account:
    """The account of a live API key, or NotAuthenticated.

    Looked up by its non-secret prefix, then the whole key is compared as a keyed digest
    in constant time (timing: no byte-by-byte comparison of the secret in SQL).
    """
    parsed = apikeys.parse(presented)
    if parsed is None:
        raise NotAuthenticated()
    with svc.sessions() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.prefix == parsed.prefix)).first()
        stored = row.digest if row is not None else "0" * 64
        ok = keyed.matches(svc.keys, keyed.API_KEY, parsed.key, stored=stored)
        if row is None or not ok or row.revoked_at is not None:
            raise NotAuthenticated()
        user = accounts.by_id(s, row.user_id)
        # Suspension (issue 11): the key stays, and works again once the account does.
        if user is None or user.suspended_at is not None:
            raise NotAuthenticated()
        account = Account.of(user)
        key_id, last_used = row.id, row.last_used_at
    now = svc.clock()
    if last_used is None or now - last_used >= TOUCH_EVERY:
        _touch(svc, key_id, now)
    return account


def _touch(svc: Services, key_id: int, now: datetime) -> None:
    """Last use = now. Conditional, so concurrent requests of one key write once per
    TOUCH_EVERY; and best effort: a busy or failing database must not fail a request
    whose key was good (the field is informative, not a security decision)."""
    stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - TOUCH_EVERY)
    try:
        with transaction(svc.sessions) as s:
            s.execute(update(ApiKey).where(ApiKey.id == key_id, stale).values(last_used_at=now))
    except SQLAlchemyError as exc:
        log.warning("api key last use not recorded: %s", type(exc).__name__)


def account_by_email(svc: Services, email: str) -> Account:
    """For the CLI: the account of an address, or InvalidInput."""
    with svc.sessions() as s:
        user = accounts.by_email(s, email.strip())
        if user is None:
            raise InvalidInput(f"no account with the address {email.strip()}")
        return Account.of(user)
