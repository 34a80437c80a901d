"""Reset requests that raise: counted against themselves, retried, then dead letters.

One hostile item must not stop recovery for everyone (issue 8): services/reset_requests.py
decides each request in its own transaction, and hands any failure here.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.orm import Session, sessionmaker

from relatch.services.context import Services
from relatch.storage.db import delete_in_batches, transaction
from relatch.storage.models import ResetRequest

log = logging.getLogger(__name__)

# Poison items (issue 8): a request that raises is counted against itself, retried after
# a short backoff (2 s, 4 s, 8 s, 16 s: a code is only useful for minutes), and set aside
# as a dead letter after this many tries.
REQUEST_MAX_TRIES = 5
REQUEST_MAX_BACKOFF = 60


def request_backoff(attempts: int) -> int:
    """Seconds before try attempts+1 of a request that failed: 2, 4, 8, ... capped at 60."""
    return int(min(2**attempts, REQUEST_MAX_BACKOFF))


def due(now: datetime) -> ColumnElement[bool]:
    return and_(
        ResetRequest.failed_at.is_(None),
        or_(ResetRequest.next_attempt_at.is_(None), ResetRequest.next_attempt_at <= now),
    )


def _failure_reason(exc: BaseException) -> str:
    """The exception's class and where it was raised; never its text.

    Secrets in logs: a message may quote the address, a rendered body or the code being
    issued; the class and code location tell an operator where to look without that.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"[:256]


def count_failure(svc: Services, request_id: int, exc: BaseException) -> None:
    now = svc.clock()
    reason = _failure_reason(exc)
    with transaction(svc.sessions) as s:
        attempts = s.execute(
            update(ResetRequest)
            .where(ResetRequest.id == request_id, ResetRequest.failed_at.is_(None))
            .values(attempts=ResetRequest.attempts + 1, last_error=reason)
            .returning(ResetRequest.attempts)
        ).scalar()
        if attempts is None:  # decided or set aside by another worker meanwhile
            return
        this = update(ResetRequest).where(ResetRequest.id == request_id)
        if attempts >= REQUEST_MAX_TRIES:
            s.execute(this.values(failed_at=now, next_attempt_at=None))
            log.error(
                "reset request %s failed %s times (%s): set aside as a dead letter "
                "(relatch mail requests --failed)",
                request_id,
                attempts,
                reason,
            )
        else:
            delay = request_backoff(attempts)
            s.execute(this.values(next_attempt_at=now + timedelta(seconds=delay)))
            log.warning(
                "reset request %s: try %s of %s failed (%s), retry in %ss",
                request_id,
                attempts,
                REQUEST_MAX_TRIES,
                reason,
                delay,
            )


def prune_dead_letters(sessions: sessionmaker[Session], cutoff: datetime) -> int:
    """Delete the requests set aside (dead letters) before `cutoff`, in bounded batches;
    how many (by the workers, after RELATCH_OUTBOX_RETENTION_DAYS). Privacy: such a row
    holds the typed address in clear, known or not; it must not outlive its inspection
    window. Requests still due or waiting their retry are never touched."""
    return delete_in_batches(sessions, ResetRequest, ResetRequest.failed_at < cutoff)
