"""Work to do once a session's transaction has committed, and never if it rolls back.

For counting what a transaction decided (a mail queued, a code issued or used: the
metrics) exactly once: a transaction that raises and is retried must not count twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "relatch.after_commit"


def after_commit(s: Session, fn: Callable[[], Any]) -> None:
    """Run `fn` once the transaction `s` is in commits (dropped if it rolls back)."""
    s.info.setdefault(_KEY, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run(session: Session) -> None:
    for fn in session.info.pop(_KEY, []):
        fn()


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)
