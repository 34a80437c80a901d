"""Bulk writes of `relatch user import`: which keys exist, and one INSERT for a batch."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from relatch.storage.models import User


def taken(
    s: Session, email_keys: Collection[str], username_keys: Collection[str]
) -> tuple[set[str], set[str]]:
    """Of these keys, the address keys and the username keys some account already holds."""
    if not email_keys and not username_keys:
        return set(), set()
    rows = s.execute(
        select(User.email_key, User.username_key).where(
            or_(User.email_key.in_(email_keys), User.username_key.in_(username_keys))
        )
    ).all()
    return {r.email_key for r in rows}, {r.username_key for r in rows}


def add_many(s: Session, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Insert accounts, each dict with email, email_key, username, username_key, name,
    password_hash and email_verified (IntegrityError if a key was taken meanwhile)."""
    if rows:
        s.execute(
            insert(User),
            [{**row, "credential_generation": 0, "created_at": now} for row in rows],
        )
