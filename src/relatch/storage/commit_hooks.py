"""Work to do once a session's transaction has committed, and never if it rolls back (or
the other way round).

For counting what a transaction decided (a mail queued, a code issued or used: the
metrics) exactly once: a transaction that raises and is retried must not count twice. And
for what lives outside the database but belongs to the transaction (the Redis limit
counters, storage/limits_redis.py): undone if it rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "relatch.after_commit"
_UNDO = "relatch.after_rollback"


def after_commit(s: Session, fn: Callable[[], Any]) -> None:
    """Run `fn` once the transaction `s` is in commits (dropped if it rolls back)."""
    s.info.setdefault(_KEY, []).append(fn)


def after_rollback(s: Session, fn: Callable[[], Any]) -> None:
    """Run `fn` if the transaction `s` is in rolls back (dropped once it commits)."""
    s.info.setdefault(_UNDO, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run(session: Session) -> None:
    session.info.pop(_UNDO, None)
    for fn in session.info.pop(_KEY, []):
        fn()


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)
    for fn in session.info.pop(_UNDO, []):
        fn()
