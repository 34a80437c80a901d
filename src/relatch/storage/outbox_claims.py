"""Who may send an outbox mail, and until when: claims with a lease and a fencing token.

Several processes run the mail worker over one database (issue 10, two processes; a
crashed process's mails must still go out). A worker takes a mail by a claim:

- `claim_due` moves a batch of due rows (`pending`, or `sending` whose lease ran out: its
  worker died or stalled) to `sending`, each with a new random token and `claimed_until =
  now + lease`, in one transaction that locks the rows it reads (PostgreSQL: `FOR UPDATE
  SKIP LOCKED`; SQLite: the single writer): of two workers racing, each gets other rows.
- `renew` (`renew_all`: a batch in one UPDATE), right before the send, counts the try and
  moves `claimed_until` to `now + lease`, only while the token is still ours (a
  conditional UPDATE on it). A claim taken over meanwhile (its lease ran out while this
  worker was busy with the mails before it) answers None (is left out): the new holder
  sends it, this worker skips it.
- `finish` (`finish_sent`: a batch of sent mails in one UPDATE) and `release` (shutdown)
  write only while the token is ours, and clear the claim. A worker whose claim was taken
  over changes nothing.

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

from sqlalchemy import ColumnElement, case, or_, select, tuple_, update
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
    """Claim up to `limit` due rows, oldest first, each with its own token, in one
    transaction. The try is not counted yet (`renew` counts it): a claim given back or
    taken over was never a try.

    Two workers never fight over rows: on PostgreSQL the rows are locked as they are read
    (`FOR UPDATE SKIP LOCKED`), so a concurrent claim skips them and takes the next due
    ones instead of waiting for this transaction; a row claimed and committed by another
    worker meanwhile is re-checked against `_due` when locked, and left out. On SQLite the
    transaction holds the one write lock from its start (storage/db.py, BEGIN IMMEDIATE):
    nothing changes between the read and the writes.
    """
    with transaction(sessions) as s:
        rows = s.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.recipient,
                OutboxMessage.subject,
                OutboxMessage.body_text,
                OutboxMessage.body_html,
                OutboxMessage.attempts,
                OutboxMessage.created_at,
            )
            .where(_due(now), OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return []
        claimed = [Claimed(row.id, secrets.token_hex(16), *row[1:]) for row in rows]
        # ORM bulk UPDATE by primary key: one statement, executed for every row, each
        # claim with its own token.
        until = now + lease
        s.execute(
            update(OutboxMessage),
            [
                {"id": c.id, "status": "sending", "claim_token": c.token, "claimed_until": until}
                for c in claimed
            ],
        )
    return claimed


def renew(
    sessions: sessionmaker[Session], item: Claimed, now: datetime, lease: timedelta
) -> Claimed | None:
    """Right before a send: still ours? Then the lease runs from now and the try is
    counted; the item comes back with its new count. None: taken over, do not send."""
    with transaction(sessions) as s:
        return _renew(s, item, now, lease)


def finish(sessions: sessionmaker[Session], item: Claimed, **values: Any) -> bool:
    """End the claim with `values` (sent, pending again, abandoned), only if still ours.
    False: taken over meanwhile, and nothing was written."""
    with transaction(sessions) as s:
        return _finish(s, item, values)


# Plain conditional UPDATEs: no ORM session state to synchronise (nothing here is loaded).
_PLAIN = {"synchronize_session": False}


def _renew(s: Session, item: Claimed, now: datetime, lease: timedelta) -> Claimed | None:
    attempts = s.execute(
        update(OutboxMessage)
        .where(_ours(item))
        .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.attempts)
        .execution_options(**_PLAIN)
    ).scalar_one_or_none()
    return None if attempts is None else replace(item, attempts=attempts)


def _finish(s: Session, item: Claimed, values: dict[str, Any]) -> bool:
    done = s.execute(
        update(OutboxMessage)
        .where(_ours(item))
        .values(claim_token=None, claimed_until=None, **values)
        .execution_options(**_PLAIN)
    )
    return rowcount(done) == 1


def release(
    sessions: sessionmaker[Session], items: Sequence[Claimed], *, counted: bool = False
) -> set[int]:
    """Give back claims not tried (shutdown, or a lease too short for the next send):
    pending again, due now, the try not counted (`counted`: it was, by `renew_all`, and is
    taken back). Claims taken over meanwhile stay with their holder. The ids given back,
    in one UPDATE."""
    if not items:
        return set()
    values: dict[str, Any] = {"status": "pending", "claim_token": None, "claimed_until": None}
    if counted:
        values["attempts"] = OutboxMessage.attempts - 1
    with transaction(sessions) as s:
        return set(
            s.scalars(
                update(OutboxMessage)
                .where(_all_ours(items))
                .values(**values)
                .returning(OutboxMessage.id)
                .execution_options(**_PLAIN)
            )
        )


# --- a batch at a time (issue 12): one statement for many claims ------------------------


def _all_ours(items: Sequence[Claimed]) -> ColumnElement[bool]:
    """`_ours` of every item at once: each row under its own token."""
    return (OutboxMessage.status == "sending") & tuple_(
        OutboxMessage.id, OutboxMessage.claim_token
    ).in_([(c.id, c.token) for c in items])


def renew_all(
    sessions: sessionmaker[Session], items: Sequence[Claimed], now: datetime, lease: timedelta
) -> dict[int, Claimed]:
    """`renew` of many claims in one UPDATE: those still ours, by id, with their new count.

    The lease then runs from `now` for all of them, so their sends must all fit in it: the
    caller checks before each send that the send's deadline ends within it."""
    if not items:
        return {}
    with transaction(sessions) as s:
        rows = s.execute(
            update(OutboxMessage)
            .where(_all_ours(items))
            .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id, OutboxMessage.attempts)
            .execution_options(**_PLAIN)
        )
        counted = {row.id: row.attempts for row in rows}
    return {c.id: replace(c, attempts=counted[c.id]) for c in items if c.id in counted}


def finish_sent(
    sessions: sessionmaker[Session], sent: Sequence[tuple[Claimed, str]], **values: Any
) -> set[int]:
    """`finish` of many mails the relay accepted, (claim, its Message-ID) each, in one
    UPDATE: the ids that were still ours (the others were taken over; nothing written)."""
    if not sent:
        return set()
    message_id = case({c.id: mid for c, mid in sent}, value=OutboxMessage.id)
    with transaction(sessions) as s:
        return set(
            s.scalars(
                update(OutboxMessage)
                .where(_all_ours([c for c, _ in sent]))
                .values(claim_token=None, claimed_until=None, message_id=message_id, **values)
                .returning(OutboxMessage.id)
                .execution_options(**_PLAIN)
            )
        )
