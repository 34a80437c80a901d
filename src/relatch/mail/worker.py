"""Delivers the outbox: claim due rows, count the try, send, retry with backoff, never drop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

import aiosmtplib
import anyio.to_thread
from sqlalchemy import or_, select, update

from relatch.mail.transports import MailDirTransport, SMTPTransport, Transport
from relatch.services.context import Services
from relatch.storage.db import transaction
from relatch.storage.models import OutboxMessage

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120  # a claim left by a crashed worker is taken over after this
MAX_BACKOFF = 3600


def backoff(attempts: int) -> int:
    """Seconds before try number attempts+1: 5 s, 10 s, 20 s, ... capped at an hour."""
    return int(min(5 * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def transport_for(svc: Services) -> Transport:
    if svc.settings.smtp_url is not None:
        return SMTPTransport(
            svc.settings.smtp_url.get_secret_value(), ca_file=svc.settings.smtp_ca_file
        )
    return MailDirTransport(svc.settings.mail_dir)


@dataclass(frozen=True)
class Claimed:
    id: int
    recipient: str
    subject: str
    body_text: str
    body_html: str
    attempts: int
    created_at: datetime


def claim_due(svc: Services, limit: int = 20) -> list[Claimed]:
    now = svc.clock()
    due = or_(
        OutboxMessage.status == "pending",
        (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until < now),
    )
    with svc.sessions() as s:
        ids = list(
            s.scalars(
                select(OutboxMessage.id)
                .where(due, OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        )
    claimed: list[Claimed] = []
    for msg_id in ids:
        with transaction(svc.sessions) as s:
            row = s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == msg_id, due)
                .values(
                    status="sending",
                    attempts=OutboxMessage.attempts + 1,
                    claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                )
                .returning(
                    OutboxMessage.id,
                    OutboxMessage.recipient,
                    OutboxMessage.subject,
                    OutboxMessage.body_text,
                    OutboxMessage.body_html,
                    OutboxMessage.attempts,
                    OutboxMessage.created_at,
                )
            ).first()
        if row is not None:
            claimed.append(Claimed(*row))
    return claimed


def build_message(svc: Services, item: Claimed) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = svc.settings.mail_from
    msg["To"] = item.recipient
    msg["Subject"] = item.subject
    msg["Date"] = format_datetime(item.created_at)
    domain = urlsplit(svc.settings.public_url).hostname or "localhost"
    msg["Message-ID"] = make_msgid(idstring=f"relatch.{item.id}", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(item.body_text)
    msg.add_alternative(item.body_html, subtype="html")
    return msg


def mark_sent(svc: Services, item: Claimed, message_id: str) -> None:
    with transaction(svc.sessions) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == item.id)
            # The bodies may hold a code: blank them once delivered.
            .values(
                status="sent",
                sent_at=svc.clock(),
                claimed_until=None,
                message_id=message_id,
                body_text="",
                body_html="",
                last_error=None,
            )
        )


def permanent_refusal(error: BaseException) -> bool:
    """The relay refused this mail's recipient for good (5xx): no later try can succeed.

    Only a refusal of the recipient counts: a 5xx to the greeting, AUTH or MAIL FROM is
    about the relay or our own settings, and an operator fixing them must find every mail
    still queued. 4xx answers and connection errors stay retried.
    """
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(500 <= r.code < 600 for r in error.recipients)
    return isinstance(error, aiosmtplib.SMTPRecipientRefused) and 500 <= error.code < 600


def mark_failed(svc: Services, item: Claimed, error: BaseException) -> None:
    now = svc.clock()
    reason = f"{type(error).__name__}: {error}"[:1000]
    # Retrying a permanent refusal only delays the dead letter (and the operator's notice).
    give_up = item.attempts >= svc.settings.mail_max_attempts or permanent_refusal(error)
    values: dict[str, object] = {"last_error": reason, "claimed_until": None}
    # Privacy: relays quote the refused address; the row keeps it (the operator's dead
    # letter), the log line does not (logs travel further than the database).
    logged = reason.replace(item.recipient, "<recipient>") if item.recipient else reason
    if give_up:
        values.update(status="abandoned", body_text="", body_html="")
        # Never silent: an abandoned mail is an error in the log and stays in the table.
        log.error("mail %s abandoned after %s tries: %s", item.id, item.attempts, logged)
    else:
        delay = backoff(item.attempts)
        values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
        log.warning(
            "mail %s try %s failed, retry in %ss: %s", item.id, item.attempts, delay, logged
        )
    with transaction(svc.sessions) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == item.id).values(**values))


def release(svc: Services, items: list[Claimed]) -> None:
    """Give back claims not tried (shutdown): pending again, the try not counted, due now."""
    if not items:
        return
    with transaction(svc.sessions) as s:
        for item in items:
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == item.id, OutboxMessage.status == "sending")
                .values(status="pending", attempts=item.attempts - 1, claimed_until=None)
            )


async def deliver_due(
    svc: Services, transport: Transport, should_stop: Callable[[], bool] = lambda: False
) -> int:
    """One pass: send what is due. Returns how many were delivered.

    Shutdown: `should_stop` is asked between mails, never during one; a mail being sent is
    sent (or marked failed), and the claims not yet tried are released, so no mail waits
    CLAIM_SECONDS in `sending` for the next process.

    Poison items (issues 8 and 10): building the message is part of the try. A row that
    cannot be built (or sent) on every try is counted like any failure and ends
    `abandoned` after RELATCH_MAIL_MAX_ATTEMPTS; the rows behind it are sent all the same.
    """
    sent = 0
    claimed = await anyio.to_thread.run_sync(claim_due, svc)
    for n, item in enumerate(claimed):
        if should_stop():
            await anyio.to_thread.run_sync(release, svc, claimed[n:])
            break
        try:
            message = build_message(svc, item)
            await transport.send(message)
        except Exception as exc:  # retried, or abandoned (kept, logged): nothing is dropped
            await anyio.to_thread.run_sync(mark_failed, svc, item, exc)
            continue
        await anyio.to_thread.run_sync(mark_sent, svc, item, str(message["Message-ID"]))
        sent += 1
    return sent
