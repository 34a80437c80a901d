"""What becomes of a mail once tried: sent (marked a batch at a time), retried with backoff,
abandoned, or given back; the mail worker's (mail/worker.py) outcomes, each written only
under the row's claim (storage/outbox_claims.py).

Marks (issue 12: one UPDATE per mail capped delivery near 130 mails/s): the mails the
relay accepted are marked sent in one statement, at the latest after MARK_EVERY of them
or MARK_SECONDS; that is the duplicate bound of mail/worker.py's docstring.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiosmtplib

from relatch.infra.metrics import MAILS
from relatch.services.context import Services
from relatch.storage import outage, outbox_claims
from relatch.storage.outbox_claims import Claimed

# The mail worker's one logger (its messages are read, and filtered, under that name).
log = logging.getLogger("relatch.mail.worker")

MAX_BACKOFF = 3600


def backoff(attempts: int) -> int:
    """Seconds before try number attempts+1: 5 s, 10 s, 20 s, ... capped at an hour."""
    return int(min(5 * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


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


@dataclass(frozen=True)
class Sent:
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
class Marks:
    """The outcomes of a renewed batch not yet written: sent, failed, given back."""

    svc: Services
    sent: list[Sent] = field(default_factory=list)
    failed: list[tuple[Claimed, BaseException]] = field(default_factory=list)
    left: list[Claimed] = field(default_factory=list)
    since: float | None = None  # time.monotonic() of the oldest unmarked acceptance

    def accepted(self, item: Claimed, message_id: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.sent.append(Sent(item, message_id))

    def due(self) -> bool:
        return len(self.sent) >= MARK_EVERY or (
            self.since is not None and time.monotonic() - self.since >= MARK_SECONDS
        )

    def take(self) -> Marks:
        taken = Marks(self.svc, self.sent, self.failed, self.left)
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


def _mark_all_sent(svc: Services, sent: list[Sent]) -> None:
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
