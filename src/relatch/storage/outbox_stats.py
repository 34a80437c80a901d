"""The outbox's backlog, for the metrics (`relatch_mail_queue_*`, computed at scrape)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from relatch.storage.models import OutboxMessage

# Not yet delivered nor abandoned: waiting for a try, or being sent.
WAITING = ("pending", "sending")


@dataclass(frozen=True)
class Backlog:
    depth: int
    oldest: datetime | None  # when the oldest waiting mail was queued


def backlog(sessions: sessionmaker[Session]) -> Backlog:
    """One aggregate over the waiting rows, found through ix_outbox_due (status first):
    its cost grows with the backlog, not with the delivered mails kept for a week."""
    with sessions() as s:
        depth, oldest = s.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(WAITING)
            )
        ).one()
    return Backlog(int(depth), oldest)
