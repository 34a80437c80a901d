"""The accounts repository: every query and write of the `users` table the use cases make.

Each function runs in the caller's session (the use case owns the transaction). The
"new password" write bumps the credential generation in the same UPDATE, so that no
caller can store a password and forget to revoke the sessions of the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from relatch.core import identity
from relatch.storage.db import rowcount
from relatch.storage.models import User

__all__ = [
    "AccountRef",
    "add",
    "by_email",
    "by_id",
    "by_login",
    "mark_proven",
    "replace_hash",
    "set_email",
    "set_password",
    "with_hash",
]


class AccountRef(Protocol):
    """What a stored grant needs of an account: the ORM row, or the services' frozen
    Account view that the authorize page and the sign-in schemes hand over."""

    @property
    def id(self) -> int: ...

    @property
    def credential_generation(self) -> int: ...


def by_id(s: Session, account_id: int) -> User | None:
    return s.get(User, account_id)


# Built once, run with parameters (issue 12: every sign-in and reset looks its account up,
# and building the SELECT cost more than running it).
_NAMED = or_(
    User.email_key == bindparam("b_email_key"), User.username_key == bindparam("b_user_key")
)
_BY_LOGIN = select(User).where(_NAMED)
_ID_BY_LOGIN = select(User.id).where(_NAMED)
_BY_EMAIL = select(User).where(User.email_key == bindparam("b_email_key"))
_ID_BY_EMAIL = select(User.id).where(User.email_key == bindparam("b_email_key"))


def _login_keys(login: str) -> dict[str, str]:
    """`login` as an address key and as a username key: a person means either."""
    key = login.strip()
    return {"b_email_key": identity.email_key(key), "b_user_key": identity.username_key(key)}


def by_login(s: Session, login: str) -> User | None:
    """The account a person means by `login`: its address or its username."""
    return s.scalars(_BY_LOGIN, _login_keys(login)).first()


def id_by_login(s: Session, login: str) -> int | None:
    """`by_login`'s account id alone."""
    return s.scalars(_ID_BY_LOGIN, _login_keys(login)).first()


def by_email(s: Session, email: str) -> User | None:
    """The account of an address, compared on its key (NFKC + casefold)."""
    return s.scalars(_BY_EMAIL, {"b_email_key": identity.email_key(email)}).first()


def id_by_email(s: Session, email: str) -> int | None:
    """`by_email`'s account id alone: no account object is built (equal work for a known
    and an unknown address where the caller needs only the id)."""
    return s.scalars(_ID_BY_EMAIL, {"b_email_key": identity.email_key(email)}).first()


def by_emails(s: Session, emails: Iterable[str]) -> dict[str, User]:
    """The accounts of many addresses in one SELECT, by address key (`identity.email_key`);
    an address without an account has no entry."""
    keys = {identity.email_key(e) for e in emails}
    if not keys:
        return {}
    return {u.email_key: u for u in s.scalars(select(User).where(User.email_key.in_(keys)))}


def with_hash(s: Session, account_id: int, password_hash: str | None) -> User | None:
    """The account if its password hash is still `password_hash` (a compare before a
    change: a reset or another change since the check makes this None)."""
    return s.scalars(
        select(User).where(User.id == account_id, User.password_hash == password_hash)
    ).first()


def add(
    s: Session,
    *,
    email: str,
    username: str,
    name: str,
    password_hash: str | None,
    now: datetime,
    job_title: str | None,
    company_name: str | None,
    email_verified: bool = False,
) -> int:
    """A new account's id (IntegrityError, from flush, when the address or username is taken).
    `email_verified`: only when an operator vouches for the address (`relatch user create`)."""
    user = User(
        email=email,
        email_key=identity.email_key(email),
        username=username,
        username_key=identity.username_key(username),
        name=name,
        password_hash=password_hash,
        credential_generation=0,
        email_verified=email_verified,
        created_at=now,
        job_title=job_title,
        company_name=company_name,
    )
    s.add(user)
    s.flush()
    return user.id


def set_password(
    s: Session, account_id: int, password_hash: str | None, now: datetime, *, verified: bool
) -> None:
    """Store a new password hash (None disables the password) and bump the credential
    generation: session revocation, every token carrying the old generation is refused.
    `verified`: a mailed code proved the address."""
    values: dict[str, object] = {
        "password_hash": password_hash,
        "credential_generation": User.credential_generation + 1,
        "password_changed_at": now,
    }
    if verified:
        values["email_verified"] = True
    s.execute(update(User).where(User.id == account_id).values(**values))


def mark_proven(s: Session, account_id: int) -> bool:
    """Mark the account's address proven (activated); True only for the call that proved it
    first: one conditional UPDATE, so of two parallel proofs exactly one sees True."""
    done = s.execute(
        update(User)
        .where(User.id == account_id, User.email_verified.is_(False))
        .values(email_verified=True)
    )
    return rowcount(done) == 1


def set_email(s: Session, account_id: int, email: str, *, verified: bool) -> None:
    """Store a new address (as `identity.checked_email` gave it) with its lookup key.
    IntegrityError, from flush, when another account holds the key (the unique index).
    `verified`: a mailed code or link proved it."""
    s.execute(
        update(User)
        .where(User.id == account_id)
        .values(email=email, email_key=identity.email_key(email), email_verified=verified)
    )
    s.flush()


def replace_hash(s: Session, account_id: int, old_hash: str, new_hash: str) -> None:
    """The same password under new hashing parameters (no generation bump): only if the
    hash is still `old_hash`, so a password changed meanwhile is not overwritten."""
    s.execute(
        update(User)
        .where(User.id == account_id, User.password_hash == old_hash)
        .values(password_hash=new_hash)
    )
