"""Delivers the outbox: claim due rows, count the try, send, retry with backoff, never drop.

Claims (storage/outbox_claims.py): a pass claims due mails CLAIM_BATCH at a time, each with
its own random token and a lease of RELATCH_MAIL_CLAIM_SECONDS; right before the batch's
sends its claims are renewed in one UPDATE (a conditional UPDATE on each token: the lease
runs from then on, the try is counted) and a claim taken over meanwhile is skipped; each
mail is then marked sent (a batch of them in one UPDATE) or failed, again only under its
token. A mail left `sending` by a process that died is claimed by another after its lease
has run out, and sent.

A send takes at most half the lease (the SMTP deadline, `transport_for`), and a send starts
only while its whole deadline ends within the batch's renewed lease (`_may_send`; a batch
slowed down by its relay gives the rest back and claims them again): no other worker can
take a mail over while it is being sent.

Duplicates, the bound: a mail is sent twice only if its process dies (SIGKILL, power
loss), or stalls past the lease, between the relay's accepting it and its mark; the next
holder cannot know it went out. Marks are written in one statement for the mails accepted
since the last one, at the latest after MARK_EVERY mails or MARK_SECONDS (issue 12: one
UPDATE per mail capped delivery near 130 mails/s), so that is at most the mails one worker
sent in the last MARK_SECONDS, and never more than MARK_EVERY, per crash (or stall); a
stall is logged ("claim lost after the send") when its worker wakes. SMTP itself adds one
case we cannot close: a connection cut after the relay took the mail but before its
answer reached us (RFC 1047) is a failed try, and the retry sends the mail again. Every
copy carries the row's one Message-ID (`message_id`), so the recipient's mail client
folds them together. Never a loss: a mail is `sent` only once the relay has accepted it,
and a claim nobody finishes is taken over after its lease.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import anyio.to_thread

from relatch.mail.compose import Mail, compose
from relatch.mail.outcomes import (
    MARK_EVERY,
    MARK_SECONDS,
    MAX_BACKOFF,
    Marks,
    backoff,
    mark_failed,
    mark_sent,
    release,
)
from relatch.mail.transports import MailDirTransport, SMTPTransport, Transport, kept
from relatch.services.context import Services
from relatch.storage import outbox_claims
from relatch.storage.outbox_claims import Claimed

# Re-exported: the worker's outcomes live in mail/outcomes.py.
__all__ = [
    "CLAIM_BATCH",
    "MARK_EVERY",
    "MARK_SECONDS",
    "MAX_BACKOFF",
    "SMTP_TIMEOUT",
    "backoff",
    "build_message",
    "claim_due",
    "deliver_due",
    "lease",
    "mark_failed",
    "mark_sent",
    "message_id",
    "release",
    "renew",
    "send_timeout",
    "transport_for",
]

log = logging.getLogger(__name__)

# The longest a relay gets for one mail, whatever the lease.
SMTP_TIMEOUT = 30.0
# Mails claimed per transaction; a pass claims batch after batch until none is due.
CLAIM_BATCH = 100


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
    domain = _domain(svc.settings.public_url)
    return f"<relatch.{item.id}.{int(item.created_at.timestamp() * 1_000_000)}@{domain}>"


@functools.lru_cache(maxsize=8)
def _domain(public_url: str) -> str:
    return urlsplit(public_url).hostname or "localhost"


class TriesSpent(Exception):
    """Every counted try of a mail was cut off (a crash or a stall) before its outcome."""


def build_message(svc: Services, item: Claimed) -> Mail:
    """The row's message, its bytes written directly (mail/compose.py). Raises for a row
    that cannot be a mail (a recipient that is not one plain address): a counted try."""
    return compose(
        mail_from=svc.settings.mail_from,
        recipient=item.recipient,
        subject=item.subject,
        date=item.created_at,
        message_id=message_id(svc, item),
        body_text=item.body_text,
        body_html=item.body_html,
    )


async def deliver_due(
    svc: Services,
    transport: Transport,
    should_stop: Callable[[], bool] = lambda: False,
    limiter: anyio.CapacityLimiter | None = None,
) -> int:
    """One pass: send everything due, batch after batch, until nothing is due. Returns how
    many were delivered.

    Throughput (issue 12): claims come CLAIM_BATCH at a time in one transaction each; the
    claimed batch is renewed (its tries counted) in one UPDATE right before its sends, and
    its messages are built in the same worker thread, straight to bytes (mail/compose.py:
    the `email` object model was two thirds of a mail's CPU); the pass sends over one SMTP
    connection (transports.kept; reopened after a failed send); the mails the relay
    accepted are marked sent in one UPDATE (`Marks`). The dev outbox's files are written
    in the worker thread too, a batch per thread hop.

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
            if isinstance(sender, MailDirTransport):
                # Files: the whole batch in one worker thread, off the event loop.
                sent += await anyio.to_thread.run_sync(
                    _deliver_to_files, svc, sender, claimed, should_stop, limiter=limiter
                )
            else:
                sent += await _deliver(svc, sender, claimed, should_stop, limiter)
    return sent


def _start(svc: Services, claimed: list[Claimed]) -> tuple[datetime, list[_Ready]]:
    """In a worker thread, right before the sends: renew the batch (count the tries) in one
    UPDATE and build each message (off the event loop). The end of the renewed lease, and
    the mails still ours, each with its message or the exception building it raised (part
    of the try). A mail whose tries are spent is marked failed here, unsent."""
    now = svc.clock()
    renewed = outbox_claims.renew_all(svc.sessions, claimed, now, lease(svc))
    ready: list[_Ready] = []
    for claim in claimed:
        item = renewed.get(claim.id)
        if item is None:
            # Its lease ran out while it waited, and another worker claimed it: that
            # worker sends it, this one must not (a duplicate).
            log.info("mail %s: claim taken over by another worker, skipped", claim.id)
        elif item.attempts > svc.settings.mail_max_attempts:
            # A mail whose send kills its process (or stalls past the lease) on every try
            # never reaches mark_failed: without this it would be taken over and tried
            # forever, one crash each time. Its tries are spent: a dead letter, unsent.
            spent = TriesSpent(f"{item.attempts - 1} tries ended without an outcome")
            mark_failed(svc, item, spent)
        else:
            try:
                ready.append((item, build_message(svc, item)))
            except Exception as exc:  # a poison row: counted like a failed send
                ready.append((item, exc))
    return now + lease(svc), ready


_Ready = tuple[Claimed, Mail | Exception]


def _may_send(svc: Services, until: datetime, should_stop: Callable[[], bool]) -> bool:
    """Whether the next send may start: no stop asked, and its whole deadline (the SMTP
    timeout) ends within the batch's renewed lease, so no other worker can take the mail
    over while it is being sent (a relay slow on the mails before it used the lease up)."""
    return not should_stop() and svc.clock() + timedelta(seconds=send_timeout(svc)) <= until


def _deliver_to_files(
    svc: Services,
    sender: MailDirTransport,
    claimed: list[Claimed],
    should_stop: Callable[[], bool],
) -> int:
    """One claimed batch into the dev outbox, all in this worker thread; how many."""
    if should_stop():
        release(svc, claimed)
        return 0
    until, ready = _start(svc, claimed)
    marks = Marks(svc)
    sent = 0
    for n, (item, built) in enumerate(ready):
        if not _may_send(svc, until, should_stop):
            marks.left = [i for i, _ in ready[n:]]
            break
        try:
            if isinstance(built, Exception):
                raise built
            sender.write(built)
        except Exception as exc:  # retried, or abandoned (kept, logged): nothing is dropped
            marks.failed.append((item, exc))
            continue
        marks.accepted(item, built.message_id)
        sent += 1
        if marks.due():
            marks.take().write()
    marks.write()
    return sent


async def _deliver(
    svc: Services,
    sender: Transport,
    claimed: list[Claimed],
    should_stop: Callable[[], bool],
    limiter: anyio.CapacityLimiter | None,
) -> int:
    """Send one claimed batch, in order, one mail at a time; how many were delivered."""
    if should_stop():
        await anyio.to_thread.run_sync(release, svc, claimed, limiter=limiter)
        return 0
    until, ready = await anyio.to_thread.run_sync(_start, svc, claimed, limiter=limiter)
    marks = Marks(svc)
    sent = 0
    try:
        for n, (item, built) in enumerate(ready):
            if not _may_send(svc, until, should_stop):
                marks.left = [i for i, _ in ready[n:]]
                break
            try:
                if isinstance(built, Exception):
                    raise built
                await sender.send(built)
            except Exception as exc:  # retried, or abandoned (kept, logged): nothing is dropped
                marks.failed.append((item, exc))
                continue
            marks.accepted(item, built.message_id)
            sent += 1
            if marks.due():
                await anyio.to_thread.run_sync(marks.take().write, limiter=limiter)
    finally:
        with anyio.CancelScope(shield=True):  # accepted by the relay: marked, even at shutdown
            await anyio.to_thread.run_sync(marks.write, limiter=limiter)
    return sent
