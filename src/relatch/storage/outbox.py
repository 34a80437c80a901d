"""The outbox: a mail is a row written in the transaction that decided to send it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import event, insert
from sqlalchemy.orm import Session, sessionmaker

from relatch.infra.metrics import MAILS
from relatch.storage.commit_hooks import after_commit
from relatch.storage.db import delete_in_batches
from relatch.storage.models import OutboxMessage


class MailRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text body, html body) of one message."""
        ...


def enqueue(
    s: Session,
    renderer: MailRenderer,
    template: str,
    recipient: str,
    context: Mapping[str, Any],
    now: datetime,
) -> OutboxMessage:
    subject, text, html = renderer.render(template, context)
    msg = OutboxMessage(
        template=template,
        recipient=recipient,
        subject=subject,
        body_text=text,
        body_html=html,
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    s.add(msg)
    after_commit(s, MAILS.labels("queued").inc)
    s.info[_QUEUED] = True  # for `on_queued`, once this transaction commits
    return msg


def enqueue_many(
    s: Session,
    renderer: MailRenderer,
    template: str,
    mails: Sequence[tuple[str, Mapping[str, Any]]],
    now: datetime,
) -> None:
    """`enqueue` of many mails of one template, (recipient, context) each, in one Core
    INSERT on the caller's transaction (the reset-request worker's batch, issue 12)."""
    if not mails:
        return
    rows = []
    for recipient, context in mails:
        subject, text, html = renderer.render(template, context)
        rows.append(
            {
                "template": template,
                "recipient": recipient,
                "subject": subject,
                "body_text": text,
                "body_html": html,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    s.connection().execute(_INSERT, rows)
    queued = len(rows)
    after_commit(s, lambda: MAILS.labels("queued").inc(queued))
    s.info[_QUEUED] = True


_INSERT = insert(OutboxMessage)
_QUEUED = "relatch.outbox.queued"


def on_queued(sessions: sessionmaker[Session], wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake` after every commit, in a session of `sessions`, of a transaction that
    queued a mail: this process's mail worker sends it at once instead of at its next poll
    (relatch/workers.py). After the commit, never before: the worker must find the row.
    Returns the function that stops it."""

    def committed(session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            wake()

    def rolled_back(session: Session) -> None:
        session.info.pop(_QUEUED, None)  # the row is gone with the transaction

    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)

    def undo() -> None:
        event.remove(sessions, "after_commit", committed)
        event.remove(sessions, "after_rollback", rolled_back)

    return undo


def prune_delivered(sessions: sessionmaker[Session], cutoff: datetime) -> int:
    """Delete the mails delivered before `cutoff` (RELATCH_OUTBOX_RETENTION_DAYS, by the
    workers), in bounded batches; how many. Privacy: the row keeps the recipient's address.
    Pending, sending and abandoned rows stay (an unsent mail is never dropped; an abandoned
    one waits for `relatch mail list --failed`)."""
    delivered = (OutboxMessage.status == "sent") & (OutboxMessage.sent_at < cutoff)
    return delete_in_batches(sessions, OutboxMessage, delivered)
