"""Delivers the outbox: claim due rows, count the try, send, retry with backoff, never drop.

Claims (storage/outbox_claims.py): a pass claims due mails CLAIM_BATCH at a time, each with
its own random token and a lease of RELATCH_MAIL_CLAIM_SECONDS; right before each send the claim
is renewed (a conditional UPDATE on the token: the lease runs from then on, the try is
counted) and a claim taken over meanwhile is skipped; the mail is then marked sent or
failed, again only under its token. A mail left `sending` by a process that died is
claimed by another after its lease has run out, and sent.

A send takes at most half the lease (the SMTP deadline, `transport_for`), so a renewed
claim outlives its send: no other worker can take the mail over while it is being sent.

Duplicates, the bound: a mail is sent twice only if its process dies (SIGKILL, power
loss), or stalls past the lease, between the relay's accepting it and `mark_sent`; the
next holder cannot know it went out. A worker has one mail in flight at a time, so that
is at most one mail per worker per crash (or stall); a stall is logged ("claim lost after
the send") when its worker wakes. SMTP itself adds one case we cannot close: a connection
cut after the relay took the mail but before its answer reached us (RFC 1047) is a failed
try, and the retry sends the mail again. Never a loss: a mail is `sent` only once the
relay has accepted it, and a claim nobody finishes is taken over after its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import anyio.to_thread

from relatch.infra.metrics import MAILS
from relatch.mail.transports import MailDirTransport, SMTPTransport, Transport, kept
from relatch.services.context import Services
from relatch.storage import outbox_claims
from relatch.storage.outbox_claims import Claimed

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600
# The longest a relay gets for one mail, whatever the lease.
SMTP_TIMEOUT = 30.0
# Mails claimed per transaction; a pass claims batch after batch until none is due.
CLAIM_BATCH = 100


def backoff(attempts: int) -> int:
    """Seconds before try number attempts+1: 5 s, 10 s, 20 s, ... capped at an hour."""
    return int(min(5 * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def lease(svc: Services) -> timedelta:
    return timedelta(seconds=svc.settings.mail_claim_seconds)


def send_timeout(svc: Services) -> float:
    """The SMTP deadline: half the lease (the other half is the margin for the mark that
    follows the send), and never more than SMTP_TIMEOUT."""
    return min(SMTP_TIMEOUT, svc.settings.mail_claim_seconds / 2)


def transport_for(svc: Services) -> Transport:
    if svc.settings.smtp_url is not None:
        return SMTPTransport(
            svc.settings.smtp_url.get_secret_value(),
            timeout=send_timeout(svc),
            ca_file=svc.settings.smtp_ca_file,
        )
    return MailDirTransport(svc.settings.mail_dir)


def claim_due(svc: Services, limit: int = CLAIM_BATCH) -> list[Claimed]:
    return outbox_claims.claim_due(svc.sessions, svc.clock(), lease(svc), limit)


def renew(svc: Services, item: Claimed) -> Claimed | None:
    return outbox_claims.renew(svc.sessions, item, svc.clock(), lease(svc))


def message_id(svc: Services, item: Claimed) -> str:
    """The same Message-ID on every try of one outbox row: a copy sent twice (a crash
    between the relay's accepting it and its mark, see the bound above) is one message to
    the recipient's mail client, which folds the two copies together."""
    domain = urlsplit(svc.settings.public_url).hostname or "localhost"
    return f"<relatch.{item.id}.{int(item.created_at.timestamp() * 1_000_000)}@{domain}>"


class TriesSpent(Exception):
    """Every counted try of a mail was cut off (a crash or a stall) before its outcome."""


def build_message(svc: Services, item: Claimed) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = svc.settings.mail_from
    msg["To"] = item.recipient
    msg["Subject"] = item.subject
    msg["Date"] = format_datetime(item.created_at)
    msg["Message-ID"] = message_id(svc, item)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(item.body_text)
    msg.add_alternative(item.body_html, subtype="html")
    return msg


def sent_values(svc: Services, message_id: str) -> dict[str, Any]:
    # The bodies may hold a code: blank them once delivered.
    return {
        "status": "sent",
        "sent_at": svc.clock(),
        "message_id": message_id,
        "body_text": "",
        "body_html": "",
        "last_error": None,
    }


def mark_sent(svc: Services, item: Claimed, message_id: str) -> bool:
    done = outbox_claims.finish(svc.sessions, item, **sent_values(svc, message_id))
    _note_sent(item, done)
    return done


def _note_sent(item: Claimed, marked: bool) -> None:
    """A mail the relay accepted: counted, and a warning if its mark found the claim lost."""
    MAILS.labels("sent").inc()  # sent, whether or not the claim still held
    if not marked:
        # The send outlived the lease (a stall): another worker holds the mail now.
        log.warning("mail %s: claim lost after the send; it may go out twice", item.id)


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
    # Privacy: relays quote the refused address; the row keeps it (the operator's dead
    # letter), the log line does not (logs travel further than the database).
    logged = reason.replace(item.recipient, "<recipient>") if item.recipient else reason
    delay = backoff(item.attempts)
    values: dict[str, object] = (
        {"status": "abandoned", "body_text": "", "body_html": ""}
        if give_up
        else {"status": "pending", "next_attempt_at": now + timedelta(seconds=delay)}
    )
    if not outbox_claims.finish(svc.sessions, item, last_error=reason, **values):
        log.warning("mail %s: claim lost during try %s: %s", item.id, item.attempts, logged)
    elif give_up:
        # Never silent: an abandoned mail is an error in the log and stays in the table.
        MAILS.labels("abandoned").inc()
        log.error("mail %s abandoned after %s tries: %s", item.id, item.attempts, logged)
    else:
        MAILS.labels("retried").inc()
        log.warning(
            "mail %s try %s failed, retry in %ss: %s", item.id, item.attempts, delay, logged
        )


def release(svc: Services, items: list[Claimed]) -> None:
    """Give back claims not tried (shutdown): pending again, the try not counted, due now."""
    outbox_claims.release(svc.sessions, items)


async def deliver_due(
    svc: Services,
    transport: Transport,
    should_stop: Callable[[], bool] = lambda: False,
    limiter: anyio.CapacityLimiter | None = None,
) -> int:
    """One pass: send everything due, batch after batch, until nothing is due. Returns how
    many were delivered.

    Throughput: claims come CLAIM_BATCH at a time in one transaction each, and the pass
    sends over one SMTP connection (transports.kept; reopened after a failed send). Each
    mail is still renewed right before its send and marked right after it, one at a time.

    Shutdown: `should_stop` is asked between mails, never during one; a mail being sent is
    sent (or marked failed), and the claims not yet tried are released, so no mail waits
    out its lease in `sending` for the next process.

    Poison items (issues 8 and 10): building the message is part of the try. A row that
    cannot be built (or sent) on every try is counted like any failure and ends
    `abandoned` after RELATCH_MAIL_MAX_ATTEMPTS; the rows behind it are sent all the same.
    The pass ends: every mail it claimed leaves `sending` (sent, backed off, abandoned,
    released) or was taken over by another worker, and none comes back due at once.

    `limiter`: the threads its database steps run in (relatch/workers.py gives the workers
    their own, apart from the requests'); None: anyio's default.
    """
    sent = 0
    async with kept(transport) as sender:
        while not should_stop():
            claimed = await anyio.to_thread.run_sync(claim_due, svc, limiter=limiter)
            if not claimed:
                break
            sent += await _deliver(svc, sender, claimed, should_stop, limiter)
    return sent


@dataclass(frozen=True)
class _Sent:
    """A mail the relay accepted, to be marked sent before the next send."""

    item: Claimed
    message_id: str


def _prepare(
    svc: Services, sent: _Sent | None, claim: Claimed
) -> tuple[Claimed | None, EmailMessage | Exception | None]:
    """In a worker thread, right before a send: mark the mail just sent (if any) and renew
    this one, in one transaction (outbox_claims.finish_and_renew), then build its message
    (off the event loop, which serves requests). The renewed item, or None if taken over;
    its message, or the exception building it raised (part of the try), or None if its
    tries are spent."""
    done = (sent.item, sent_values(svc, sent.message_id)) if sent is not None else None
    try:
        marked, item = outbox_claims.finish_and_renew(
            svc.sessions, done, claim, svc.clock(), lease(svc)
        )
    except Exception:
        if sent is not None:  # the relay took it: its mark must not wait for the renewal
            mark_sent(svc, sent.item, sent.message_id)
        raise
    if sent is not None:
        _note_sent(sent.item, bool(marked))
    if item is None or item.attempts > svc.settings.mail_max_attempts:
        return item, None
    try:
        return item, build_message(svc, item)
    except Exception as exc:  # a poison row: counted like a failed send
        return item, exc


async def _deliver(
    svc: Services,
    sender: Transport,
    claimed: list[Claimed],
    should_stop: Callable[[], bool],
    limiter: anyio.CapacityLimiter | None,
) -> int:
    """Send one claimed batch, in order, one mail at a time; how many were delivered."""

    sent = 0
    last: _Sent | None = None
    for n, claim in enumerate(claimed):
        if should_stop():
            if last is not None:
                await anyio.to_thread.run_sync(
                    mark_sent, svc, last.item, last.message_id, limiter=limiter
                )
                last = None
            await anyio.to_thread.run_sync(release, svc, claimed[n:], limiter=limiter)
            break
        item, built = await anyio.to_thread.run_sync(_prepare, svc, last, claim, limiter=limiter)
        last = None
        if item is None:
            # Its lease ran out while the mails before it were sent, and another worker
            # claimed it: that worker sends it, this one must not (a duplicate).
            log.info("mail %s: claim taken over by another worker, skipped", claim.id)
            continue
        if built is None:
            # A mail whose send kills its process (or stalls past the lease) on every try
            # never reaches mark_failed: without this it would be taken over and tried
            # forever, one crash each time. Its tries are spent: a dead letter, unsent.
            spent = TriesSpent(f"{item.attempts - 1} tries ended without an outcome")
            await anyio.to_thread.run_sync(mark_failed, svc, item, spent, limiter=limiter)
            continue
        try:
            if isinstance(built, Exception):
                raise built
            await sender.send(built)
        except Exception as exc:  # retried, or abandoned (kept, logged): nothing is dropped
            await anyio.to_thread.run_sync(mark_failed, svc, item, exc, limiter=limiter)
            continue
        last = _Sent(item, str(built["Message-ID"]))
        sent += 1
    if last is not None:
        with anyio.CancelScope(shield=True):  # accepted by the relay: marked, even at shutdown
            await anyio.to_thread.run_sync(
                mark_sent, svc, last.item, last.message_id, limiter=limiter
            )
    return sent
