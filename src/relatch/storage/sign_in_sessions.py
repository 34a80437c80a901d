"""The sign-in session records (storage/models_sessions.py): every statement in one place.

Each query names the account as well as the session: a session id of another account
matches nothing, exactly like an unknown one (services/sign_in_sessions.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from relatch.storage.db import rowcount
from relatch.storage.models import User
from relatch.storage.models_sessions import SignInSession

_INSERT = insert(SignInSession)


def add(s: Session, **values: object) -> None:
    """One new record, a Core INSERT on the transaction's connection (issue 12: the ORM's
    unit of work cost a sign-in more than the row; nothing reads the row back)."""
    s.connection().execute(_INSERT, values)


def live(s: Session, account_id: int, generation: int, now: datetime) -> Sequence[SignInSession]:
    """The account's sessions that still sign it in, newest sign-in first."""
    return s.scalars(
        select(SignInSession)
        .where(
            SignInSession.user_id == account_id,
            SignInSession.generation == generation,
            SignInSession.expires_at > now,
        )
        .order_by(SignInSession.created_at.desc(), SignInSession.id.desc())
    ).all()


def find(s: Session, account_id: int, public_id: str) -> SignInSession | None:
    return s.scalar(
        select(SignInSession).where(
            SignInSession.user_id == account_id, SignInSession.public_id == public_id
        )
    )


def touch(s: Session, row_id: int, now: datetime, every: timedelta) -> None:
    """Last seen = now, only if it is older than `every`: the conditional UPDATE keeps
    concurrent requests of one session from writing more than once per interval."""
    s.execute(
        update(SignInSession)
        .where(SignInSession.id == row_id, SignInSession.last_seen_at <= now - every)
        .values(last_seen_at=now)
    )


def renew(s: Session, account_id: int, public_id: str, generation: int) -> int:
    """The session survives a generation bump it caused (a password change): rows touched."""
    return rowcount(
        s.execute(
            update(SignInSession)
            .where(SignInSession.user_id == account_id, SignInSession.public_id == public_id)
            .values(generation=generation)
        )
    )


def end(s: Session, account_id: int, public_id: str) -> bool:
    """Delete one session of this account; False if it has none by this id."""
    result = s.execute(
        delete(SignInSession).where(
            SignInSession.user_id == account_id, SignInSession.public_id == public_id
        )
    )
    return rowcount(result) == 1


def end_all_but(s: Session, account_id: int, keep: str | None) -> int:
    """Delete every session of the account but `keep` (None: every one)."""
    stmt = delete(SignInSession).where(SignInSession.user_id == account_id)
    if keep is not None:
        stmt = stmt.where(SignInSession.public_id != keep)
    return rowcount(s.execute(stmt))


def prune(s: Session, account_id: int, generation: int, now: datetime) -> int:
    """Delete the account's dead rows (expired, or of an older generation)."""
    return rowcount(
        s.execute(
            delete(SignInSession).where(
                SignInSession.user_id == account_id,
                or_(SignInSession.expires_at <= now, SignInSession.generation != generation),
            )
        )
    )


_COUNT = (
    select(func.count())
    .select_from(SignInSession)
    .where(SignInSession.user_id == bindparam("b_user_id"))
)


def count(s: Session, account_id: int) -> int:
    # Prebuilt, as Core: it runs at every sign-in (issue 12).
    return int(s.connection().execute(_COUNT, {"b_user_id": account_id}).scalar_one())


def keep_newest(s: Session, account_id: int, keep: int) -> int:
    """Delete the account's sessions beyond its `keep` newest sign-ins; how many."""
    newest = (
        select(SignInSession.id)
        .where(SignInSession.user_id == account_id)
        .order_by(SignInSession.created_at.desc(), SignInSession.id.desc())
        .limit(keep)
    )
    return rowcount(
        s.execute(
            delete(SignInSession).where(
                SignInSession.user_id == account_id, SignInSession.id.not_in(newest)
            )
        )
    )


def end_sessionless(s: Session, account_id: int) -> None:
    """Refuse, from now on, the account's session JWTs that carry no `sid`."""
    s.execute(update(User).where(User.id == account_id).values(sessionless_ended=True))
