"""The in-process workers `relatch serve` runs: reset requests to codes, outbox to mail.

Several processes may run them at once: every claim is a conditional UPDATE. The state
of one process's workers (the wake-up event, when each periodic prune last ran) lives
here, in `Workers`, not in the shared `Services`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import anyio
import anyio.to_thread

from relatch.mail.transports import Transport
from relatch.mail.worker import deliver_due
from relatch.services import (
    audit,
    code_expiry,
    known_clients,
    limits,
    mfa_reset,
    reset_requests,
    reset_retries,
    sign_in_sessions,
)
from relatch.services.context import Services
from relatch.storage import oauth_repo, outage, outbox
from relatch.storage.one_time import (
    ACTIVATION_CODES,
    EMAIL_CHANGES,
    EMAIL_UNDO_LINKS,
    NOT_ME_LINKS,
    OAUTH_CODES,
)

log = logging.getLogger(__name__)

Step = Callable[[Services], Awaitable[object]]
T = TypeVar("T")


@dataclass
class Periodic:
    """Upkeep that runs at most once per `every` in this process: the one throttle of every
    periodic prune (the database is not asked to delete on each poll of the workers)."""

    name: str
    every: timedelta
    step: Callable[[Services], int]
    last: datetime | None = None

    def run(self, svc: Services) -> int:
        now = svc.clock()
        # A clock set back runs it (no throttle stuck until the old time comes round again).
        if self.last is not None and timedelta(0) <= now - self.last < self.every:
            return 0
        # Marked when tried: a failing prune waits its turn instead of failing on each poll.
        self.last = now
        return self.step(svc)


def _prune_limits(svc: Services) -> int:
    return svc.limits.prune(svc.clock())


# Between two retention prunes of the expiring rows below (issue 10).
RETENTION_EVERY = timedelta(minutes=10)
# Expired codes, links and tokens are kept this long past their expiry, not deleted at it:
# a late try of an expired reset code or link must still find its row (the same work as
# any failure, timing; audited as "expired" rather than "unknown"), and a replay of an
# expired OAuth code must still find it to revoke the tokens it gave (RFC 6749 4.1.2),
# while nonce reuse within that time is still seen.
EXPIRED_GRACE = timedelta(days=1)


def _expired(svc: Services) -> datetime:
    return svc.clock() - EXPIRED_GRACE


def _kept(svc: Services) -> datetime:
    return svc.clock() - timedelta(days=svc.settings.outbox_retention_days)


# Every table with expiring rows (issue 10), each pruned in bounded batches
# (storage/db.delete_in_batches) and guarded on its own. Live rows (a code, an unsent mail,
# a valid token, a request still being tried) are never matched: the owner's side.
RETENTION: list[tuple[str, Callable[[Services], int]]] = [
    ("reset code prune", lambda svc: code_expiry.prune_reset_codes(svc, _expired(svc))),
    ("not-me link prune", lambda svc: NOT_ME_LINKS.prune_expired(svc.sessions, _expired(svc))),
    (
        "activation code prune",
        lambda svc: ACTIVATION_CODES.prune_expired(svc.sessions, _expired(svc)),
    ),
    (
        "email change prune",
        lambda svc: EMAIL_CHANGES.prune_expired(svc.sessions, _expired(svc)),
    ),
    (
        "email undo link prune",
        lambda svc: EMAIL_UNDO_LINKS.prune_expired(svc.sessions, _expired(svc)),
    ),
    ("oauth code prune", lambda svc: OAUTH_CODES.prune_expired(svc.sessions, _expired(svc))),
    ("oauth token prune", lambda svc: oauth_repo.prune_tokens(svc.sessions, _expired(svc))),
    # Delivered mails and dead-lettered reset requests: RELATCH_OUTBOX_RETENTION_DAYS.
    ("outbox prune", lambda svc: outbox.prune_delivered(svc.sessions, _kept(svc))),
    (
        "dead letter prune",
        lambda svc: reset_retries.prune_dead_letters(svc.sessions, _kept(svc)),
    ),
    # Past their expiry they are strangers again: no grace needed.
    ("known client prune", lambda svc: known_clients.prune_expired(svc.sessions, svc.clock())),
    ("session prune", sign_in_sessions.prune_expired),
    # Ended operator TOTP removals, after RELATCH_AUDIT_RETENTION_DAYS (their audit rows go too).
    ("mfa reset prune", mfa_reset.prune_ended),
]


MFA_RESET_EVERY = timedelta(minutes=1)


def periodic_prunes() -> list[Periodic]:
    """The periodic prunes of one process, each with its own throttle state."""
    return [
        # Audit rows past RELATCH_AUDIT_RETENTION_DAYS (every 10 minutes).
        Periodic("audit prune", audit.PRUNE_EVERY, audit.prune),
        # Ended rate-limit windows (once a minute; a no-op on Redis, which expires keys).
        Periodic("limit prune", limits.PRUNE_EVERY, _prune_limits),
        # Expired codes, links, tokens, delivered mails, dead letters, known clients.
        *(Periodic(name, RETENTION_EVERY, step) for name, step in RETENTION),
        # Operators' TOTP removals whose wait is over (services/mfa_reset.py; once a minute:
        # the owner's next sign-in carries one out at once anyway).
        Periodic("mfa reset", MFA_RESET_EVERY, mfa_reset.apply_due),
    ]


_outages = outage.OutageLog(
    log,
    "database unavailable (%s): %s worker step(s) left for a later pass since the last such line",
)


async def _guarded(name: str, step: Awaitable[T]) -> T | None:
    """Run one step; its failure is logged (None) and never skips the steps after it."""
    try:
        return await step
    except Exception as exc:
        # A database hiccup must not kill the worker; the rows wait for the next pass.
        if outage.unavailable(exc):
            # A restart or lost connection (issue 10): expected, passes, no traceback.
            _outages.note(exc)
            return None
        # (SQL errors carry no bound parameters: storage/db.make_engine hides them.)
        log.exception("background step failed: %s", name)
        return None


# Reset requests taken up per call of the step, and at most per pass before the upkeep
# steps get their turn (the loop then goes straight on: it does not wait while work remains).
REQUEST_BATCH = 100
REQUESTS_PER_PASS = 10_000


# Threads of the workers' own (issue 12): their database steps never take one of the
# threads requests use (anyio's default limiter), and requests never take theirs. Under
# 64 writers the workers had delivered almost no mail until the load stopped, queued
# behind the requests for the default limiter's 40 threads. Each loop holds at most one
# thread at a time (its step, or its wait for work); two spare for the extra steps.
WORKER_THREADS = 4


# Readiness (GET /readyz): a worker is late when it has shown no progress (a pass begun,
# an item done, a pass ended) for its poll interval plus this long. One item is at most a
# mail's send (its SMTP deadline, at most 30 s) or a reset request or prune batch.
LATE_AFTER_SECONDS = 60.0


@dataclass
class Beat:
    """When one worker of this process last showed progress (time.monotonic)."""

    last: float | None = None
    passes: int = 0  # passes finished


@dataclass
class Workers:
    """The two workers of one process, over the process's `Services`."""

    svc: Services
    transport: Transport
    extra: list[Step] = field(default_factory=list)
    # Ends the reset-request worker's wait early: shutdown only. Reset requests do not set
    # it: see services/reset_requests.request_reset (timing).
    wake: threading.Event = field(default_factory=threading.Event)
    # Ends the mail worker's wait early: shutdown, and every commit in this process that
    # queued a mail (storage/outbox.on_queued, while `run_forever` runs).
    mail_wake: threading.Event = field(default_factory=threading.Event)
    # Set by `stop()` (shutdown): the passes end between two items, never inside one. A
    # threading.Event, since the reset step asks it from its worker thread.
    halted: threading.Event = field(default_factory=threading.Event)
    upkeep: list[Periodic] = field(default_factory=periodic_prunes)
    # Progress of each worker, for GET /readyz (`health`).
    beats: dict[str, Beat] = field(default_factory=lambda: {"reset": Beat(), "mail": Beat()})
    # The workers' own threads (WORKER_THREADS), apart from the requests'.
    limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(WORKER_THREADS)
    )

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def _stop_asked(self, worker: str) -> Callable[[], bool]:
        """`halted.is_set`, asked between two items: each ask is also a sign of progress."""

        def asked() -> bool:
            self.beats[worker].last = time.monotonic()
            return self.halted.is_set()

        return asked

    async def requests_pass(self) -> bool:
        """Reset requests to codes and outbox rows until none is due, then the upkeep
        steps. True if requests are left (REQUESTS_PER_PASS reached): go again at once."""
        svc = self.svc
        stop = self._stop_asked("reset")
        stop()
        left = False
        taken = 0
        step = functools.partial(
            reset_requests.process_requests, svc, REQUEST_BATCH, should_stop=stop
        )
        while not stop():
            if taken >= REQUESTS_PER_PASS:
                left = True
                break
            n = await _guarded("reset requests", self._in_thread(step))
            taken += n or 0
            if n is None or n < REQUEST_BATCH:
                break  # none left due (or the step failed: the next pass retries)
        for job in self.upkeep:
            if stop():
                return False  # upkeep waits for the next process; nothing is half done
            await _guarded(job.name, self._in_thread(job.run, svc))
        for step_ in self.extra:
            if stop():
                return False
            await _guarded(getattr(step_, "__name__", "extra step"), step_(svc))
        stop()
        self.beats["reset"].passes += 1
        return left

    async def mail_pass(self) -> bool:
        """Every due mail (mail/worker.deliver_due loops until none is due)."""
        stop = self._stop_asked("mail")
        stop()
        await _guarded("mail delivery", deliver_due(self.svc, self.transport, stop, self.limiter))
        stop()
        self.beats["mail"].passes += 1
        return False

    def health(self) -> dict[str, str]:
        """Each worker's readiness (GET /readyz): "ok", or why not."""
        late_after = self.svc.settings.worker_poll_seconds + LATE_AFTER_SECONDS
        now = time.monotonic()
        report: dict[str, str] = {}
        for name, beat in self.beats.items():
            if self.halted.is_set():
                state = "stopped"
            elif beat.passes == 0:
                state = "no pass finished yet"
            elif beat.last is None or now - beat.last > late_after:
                state = f"no progress for more than {late_after:g} s"
            else:
                state = "ok"
            report[f"{name}_worker"] = state
        return report

    async def run_once(self) -> None:
        """Both workers once, requests first (so their mails go out in the same pass).

        One hostile item must not stop all mail (issue 8): each step is guarded, so a reset
        worker that raises never skips delivery, nor the other way round.
        """
        await self.requests_pass()
        await self.mail_pass()

    async def _loop(
        self,
        stopping: anyio.Event,
        one_pass: Callable[[], Awaitable[bool]],
        wake: threading.Event,
    ) -> None:
        while not stopping.is_set():
            # Cleared before the pass: work that arrives during it wakes the next wait.
            wake.clear()
            if await one_pass():
                continue  # work left: no wait
            await anyio.to_thread.run_sync(
                wake.wait,
                self.svc.settings.worker_poll_seconds,
                abandon_on_cancel=True,
                limiter=self.limiter,
            )

    async def run_forever(self, stopping: anyio.Event) -> None:
        """The two workers as two loops: a slow relay (up to its timeout per mail) or a stuck
        request never holds the other back (issue 8: the workers never block each other).

        Each pass drains its queue; between passes a loop waits up to
        RELATCH_WORKER_POLL_SECONDS (for other processes' work), and the mail loop is woken
        at once by a mail queued in this process."""
        undo = outbox.on_queued(self.svc.sessions, self.mail_wake.set)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._loop, stopping, self.requests_pass, self.wake)
                tg.start_soon(self._loop, stopping, self.mail_pass, self.mail_wake)
        finally:
            undo()

    def stop(self) -> None:
        """Shutdown: the passes end after the item each holds, and the loops wake now
        instead of at the next poll (set `stopping` too)."""
        self.halted.set()
        self.wake.set()
        self.mail_wake.set()


async def run_once(svc: Services, transport: Transport, extra: list[Step] | None = None) -> None:
    """Both workers once, with fresh per-process state (tools and tests)."""
    await Workers(svc, transport, list(extra or [])).run_once()


async def run_forever(
    svc: Services, transport: Transport, stopping: anyio.Event, extra: list[Step] | None = None
) -> None:
    """Both workers until `stopping` is set (and the task is cancelled, or the poll ends)."""
    await Workers(svc, transport, list(extra or [])).run_forever(stopping)
