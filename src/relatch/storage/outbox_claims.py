"""Who may send an outbox mail, and until when: claims with a lease and a fencing token.

Several processes run the mail worker over one database (issue 10, two processes; a
crashed process's mails must still go out). A worker takes a mail by a claim:

- `claim_due` moves a due row (`pending`, or `sending` whose lease ran out: its worker
  died or stalled) to `sending` with a new random token and `claimed_until = now + lease`,
  in one conditional UPDATE per row: of two workers racing for a row, one matches it.
- `renew`, right before the send, counts the try and moves `claimed_until` to
  `now + lease`, only while the token is still ours (a conditional UPDATE on it). A claim
  taken over meanwhile (its lease ran out while this worker was busy with the mails before
  it in its batch) answers None: the new holder sends it, this worker skips it.
- `finish` (sent, failed) and `release` (shutdown) write only while the token is ours, and
  clear the claim. A worker whose claim was taken over changes nothing.

A claim is taken over only once `claimed_until` has passed, and every new claim has a new
token, so at any moment at most one worker can renew or finish a row. The lease must
therefore outlast a whole send (mail/worker.py sizes the SMTP deadline on it). The clocks
of the processes are compared through `claimed_until`: they must agree to well within the
lease (one host, or NTP).

The token is not a secret: it only has to differ between two claims (128 random bits).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from relatch.storage.db import rowcount, transaction
from relatch.storage.models import OutboxMessage


@dataclass(frozen=True)
class Claimed:
    """A mail this worker holds: its row's contents and the claim's token."""

    id: int
    token: str
    recipient: str
    subject: str
    body_text: str
    body_html: str
    attempts: int  # tries counted so far, this one included once renewed
    created_at: datetime


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        OutboxMessage.status == "pending",
        (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until < now),
    )


def _ours(item: Claimed) -> ColumnElement[bool]:
    return (
        (OutboxMessage.id == item.id)
        & (OutboxMessage.status == "sending")
        & (OutboxMessage.claim_token == item.token)
    )


def claim_due(
    sessions: sessionmaker[Session], now: datetime, lease: timedelta, limit: int = 20
) -> list[Claimed]:
    """Claim up to `limit` due rows, oldest first, each with its own token. The try is not
    counted yet (`renew` counts it): a claim given back or taken over was never a try."""
    with sessions() as s:
        ids = list(
            s.scalars(
                select(OutboxMessage.id)
                .where(_due(now), OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )
    claimed: list[Claimed] = []
    for msg_id in ids:
        token = secrets.token_hex(16)
        with transaction(sessions) as s:
            # Re-checked in the UPDATE: a row another worker claimed since the SELECT is
            # no longer due (PostgreSQL re-evaluates the WHERE on the row it waited for).
            row = s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == msg_id, _due(now))
                .values(status="sending", claim_token=token, claimed_until=now + lease)
                .returning(
                    OutboxMessage.recipient,
                    OutboxMessage.subject,
                    OutboxMessage.body_text,
                    OutboxMessage.body_html,
                    OutboxMessage.attempts,
                    OutboxMessage.created_at,
                )
            ).first()
        if row is not None:
            claimed.append(Claimed(msg_id, token, *row))
    return claimed


def renew(
    sessions: sessionmaker[Session], item: Claimed, now: datetime, lease: timedelta
) -> Claimed | None:
    """Right before a send: still ours? Then the lease runs from now and the try is
    counted; the item comes back with its new count. None: taken over, do not send."""
    with transaction(sessions) as s:
        attempts = s.execute(
            update(OutboxMessage)
            .where(_ours(item))
            .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.attempts)
        ).scalar_one_or_none()
    return None if attempts is None else replace(item, attempts=attempts)


def finish(sessions: sessionmaker[Session], item: Claimed, **values: Any) -> bool:
    """End the claim with `values` (sent, pending again, abandoned), only if still ours.
    False: taken over meanwhile, and nothing was written."""
    with transaction(sessions) as s:
        done = s.execute(
            update(OutboxMessage)
            .where(_ours(item))
            .values(claim_token=None, claimed_until=None, **values)
        )
        return rowcount(done) == 1


def release(sessions: sessionmaker[Session], items: Sequence[Claimed]) -> int:
    """Give back claims not tried (shutdown): pending again, due now, the try never
    counted. Claims taken over meanwhile stay with their holder. How many were ours."""
    if not items:
        return 0
    given = 0
    with transaction(sessions) as s:
        for item in items:
            done = s.execute(
                update(OutboxMessage)
                .where(_ours(item))
                .values(status="pending", claim_token=None, claimed_until=None)
            )
            given += rowcount(done)
    return given
