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

import email.policy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import anyio.to_thread

from relatch.infra.metrics import MAILS
from relatch.mail.transports import MailDirTransport, SMTPTransport, Transport, kept
from relatch.services.context import Services
from relatch.storage import outage, outbox_claims
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


class _HeaderClasses(HeaderRegistry):
    """The standard library's header classes, each made once: `HeaderRegistry` makes a new
    class on every header set, which was half the cost of building a mail (issue 12). The
    classes are the same (class, `policy.default`'s base); only the lookup is cached."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# `email.policy.default`, with the header classes made once per process.
POLICY = email.policy.default.clone(header_factory=_HeaderClasses())


def build_message(svc: Services, item: Claimed) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
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

    Throughput (issue 12): claims come CLAIM_BATCH at a time in one transaction each; the
    claimed batch is renewed (its tries counted) in one UPDATE right before its sends, and
    its messages are built in the same worker thread; the pass sends over one SMTP
    connection (transports.kept; reopened after a failed send); the mails the relay
    accepted are marked sent in one UPDATE (`_Marks`). The dev outbox's files are written
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


@dataclass(frozen=True)
class _Sent:
    """A mail the relay accepted, to be marked sent."""

    item: Claimed
    message_id: str


# Mails the relay accepted are marked sent in one UPDATE once this many are waiting, or
# this long after the oldest was accepted, and at the end of the batch. The duplicate
# bound: a crash (or a stall past the lease) between the relay's acceptance and the mark
# sends again at most the mails accepted since the last mark.
MARK_EVERY = 20
MARK_SECONDS = 0.25


@dataclass
class _Marks:
    """The outcomes of a renewed batch not yet written: sent, failed, given back."""

    svc: Services
    sent: list[_Sent] = field(default_factory=list)
    failed: list[tuple[Claimed, BaseException]] = field(default_factory=list)
    left: list[Claimed] = field(default_factory=list)
    since: float | None = None  # time.monotonic() of the oldest unmarked acceptance

    def accepted(self, item: Claimed, message: EmailMessage) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.sent.append(_Sent(item, str(message["Message-ID"])))

    def due(self) -> bool:
        return len(self.sent) >= MARK_EVERY or (
            self.since is not None and time.monotonic() - self.since >= MARK_SECONDS
        )

    def take(self) -> _Marks:
        taken = _Marks(self.svc, self.sent, self.failed, self.left)
        self.sent, self.failed, self.left, self.since = [], [], [], None
        return taken

    def write(self) -> None:
        """In a worker thread: the sent ones in one UPDATE, each failed one retried or
        abandoned, the ones not tried given back."""
        svc = self.svc
        if self.sent:
            _mark_all_sent(svc, self.sent)
        for item, error in self.failed:
            mark_failed(svc, item, error)
        if self.left:
            given = outbox_claims.release(svc.sessions, self.left, counted=True)
            for item in self.left:
                if item.id not in given:
                    log.info("mail %s: claim taken over by another worker, skipped", item.id)


def _mark_all_sent(svc: Services, sent: list[_Sent]) -> None:
    values = sent_values(svc, "")
    del values["message_id"]  # each its own (outbox_claims.finish_sent)
    pairs = [(s.item, s.message_id) for s in sent]
    try:
        marked = outbox_claims.finish_sent(svc.sessions, pairs, **values)
    except Exception as exc:
        if outage.unavailable(exc) or len(sent) == 1:
            raise  # unmarked: taken over after the lease and sent again, never lost
        # One row must not leave the others unmarked (sent again): one by one.
        log.warning("marking %s sent mails failed (%s): one by one", len(sent), type(exc).__name__)
        for done in sent:
            try:
                mark_sent(svc, done.item, done.message_id)
            except Exception as one:
                if outage.unavailable(one):
                    raise
                log.exception("mail %s: sent, but its mark failed", done.item.id)
        return
    for done in sent:
        _note_sent(done.item, done.item.id in marked)


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


_Ready = tuple[Claimed, EmailMessage | Exception]


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
    marks = _Marks(svc)
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
        marks.accepted(item, built)
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
    marks = _Marks(svc)
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
            marks.accepted(item, built)
            sent += 1
            if marks.due():
                await anyio.to_thread.run_sync(marks.take().write, limiter=limiter)
    finally:
        with anyio.CancelScope(shield=True):  # accepted by the relay: marked, even at shutdown
            await anyio.to_thread.run_sync(marks.write, limiter=limiter)
    return sent
