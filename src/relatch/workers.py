"""The in-process workers `relatch serve` runs: reset requests to codes, outbox to mail.

Several processes may run them at once: every claim is a conditional UPDATE. The state
of one process's workers (the wake-up event, the audit prune throttle) lives here, in
`Workers`, not in the shared `Services`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import anyio
import anyio.to_thread

from relatch.mail.transports import Transport
from relatch.mail.worker import deliver_due
from relatch.services import audit, reset
from relatch.services.context import Services

log = logging.getLogger(__name__)

Step = Callable[[Services], Awaitable[object]]


async def _guarded(name: str, step: Awaitable[object]) -> None:
    """Run one step; its failure is logged and never skips the steps after it."""
    try:
        await step
    except Exception:
        # A database hiccup must not kill the worker; the rows wait for the next pass.
        # (SQL errors carry no bound parameters: storage/db.make_engine hides them.)
        log.exception("background step failed: %s", name)


@dataclass
class Workers:
    """The two workers of one process, over the process's `Services`."""

    svc: Services
    transport: Transport
    extra: list[Step] = field(default_factory=list)
    # Ends the workers' wait early (shutdown). Reset requests do not set it: see
    # services/reset.request_reset (timing).
    wake: threading.Event = field(default_factory=threading.Event)
    # When these workers last pruned the audit trail (at most every audit.PRUNE_EVERY).
    audit_pruned_at: datetime | None = None

    def _prune_audit(self) -> int:
        now = self.svc.clock()
        last = self.audit_pruned_at
        if last is not None and now - last < audit.PRUNE_EVERY:
            return 0
        deleted = audit.prune(self.svc)
        self.audit_pruned_at = now
        return deleted

    async def requests_pass(self) -> None:
        """Reset requests to codes and outbox rows, then the upkeep steps."""
        svc = self.svc
        await _guarded("reset requests", anyio.to_thread.run_sync(reset.process_requests, svc))
        # Audit rows past RELATCH_AUDIT_RETENTION_DAYS (at most every 10 minutes per process).
        await _guarded("audit prune", anyio.to_thread.run_sync(self._prune_audit))
        # Ended rate-limit windows (at most once a minute per process; no-op on Redis).
        await _guarded("limit prune", anyio.to_thread.run_sync(svc.limits.prune, svc.clock()))
        for step in self.extra:
            await _guarded(getattr(step, "__name__", "extra step"), step(svc))

    async def mail_pass(self) -> None:
        await _guarded("mail delivery", deliver_due(self.svc, self.transport))

    async def run_once(self) -> None:
        """Both workers once, requests first (so their mails go out in the same pass).

        One hostile item must not stop all mail (issue 8): each step is guarded, so a reset
        worker that raises never skips delivery, nor the other way round.
        """
        await self.requests_pass()
        await self.mail_pass()

    async def _loop(self, stopping: anyio.Event, one_pass: Callable[[], Awaitable[None]]) -> None:
        while not stopping.is_set():
            await one_pass()
            woke = await anyio.to_thread.run_sync(
                self.wake.wait, self.svc.settings.worker_poll_seconds, abandon_on_cancel=True
            )
            if woke and not stopping.is_set():
                self.wake.clear()

    async def run_forever(self, stopping: anyio.Event) -> None:
        """The two workers as two loops: a slow relay (up to its timeout per mail) or a stuck
        request never holds the other back (issue 8: the workers never block each other)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._loop, stopping, self.requests_pass)
            tg.start_soon(self._loop, stopping, self.mail_pass)

    def stop(self) -> None:
        """Wake the loops now (after `stopping` is set) instead of at the next poll."""
        self.wake.set()


async def run_once(svc: Services, transport: Transport, extra: list[Step] | None = None) -> None:
    """Both workers once, with fresh per-process state (tools and tests)."""
    await Workers(svc, transport, list(extra or [])).run_once()


async def run_forever(
    svc: Services, transport: Transport, stopping: anyio.Event, extra: list[Step] | None = None
) -> None:
    """Both workers until `stopping` is set (and the task is cancelled, or the poll ends)."""
    await Workers(svc, transport, list(extra or [])).run_forever(stopping)
