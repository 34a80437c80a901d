"""The in-process workers `relatch serve` runs: reset requests to codes, outbox to mail.

Several processes may run them at once: every claim is a conditional UPDATE.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

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


async def requests_pass(svc: Services, extra: list[Step] | None = None) -> None:
    """Reset requests to codes and outbox rows, then the upkeep steps."""
    await _guarded("reset requests", anyio.to_thread.run_sync(reset.process_requests, svc))
    # Audit rows past RELATCH_AUDIT_RETENTION_DAYS (at most every 10 minutes per process).
    await _guarded("audit prune", anyio.to_thread.run_sync(audit.prune, svc))
    # Ended rate-limit windows (at most once a minute per process; no-op on Redis).
    await _guarded("limit prune", anyio.to_thread.run_sync(svc.limits.prune, svc.clock()))
    for step in extra or []:
        await _guarded(getattr(step, "__name__", "extra step"), step(svc))


async def mail_pass(svc: Services, transport: Transport) -> None:
    await _guarded("mail delivery", deliver_due(svc, transport))


async def run_once(svc: Services, transport: Transport, extra: list[Step] | None = None) -> None:
    """Both workers once, requests first (so their mails go out in the same pass).

    One hostile item must not stop all mail (issue 8): each step is guarded, so a reset
    worker that raises never skips delivery, nor the other way round.
    """
    await requests_pass(svc, extra)
    await mail_pass(svc, transport)


async def _loop(svc: Services, stopping: anyio.Event, one_pass: Step) -> None:
    while not stopping.is_set():
        await one_pass(svc)
        woke = await anyio.to_thread.run_sync(
            svc.wake.wait, svc.settings.worker_poll_seconds, abandon_on_cancel=True
        )
        if woke and not stopping.is_set():
            svc.wake.clear()


async def run_forever(
    svc: Services, transport: Transport, stopping: anyio.Event, extra: list[Step] | None = None
) -> None:
    """The two workers as two loops: a slow relay (up to its timeout per mail) or a stuck
    request never holds the other back (issue 8: the workers never block each other)."""

    async def requests(s: Services) -> None:
        await requests_pass(s, extra)

    async def mail(s: Services) -> None:
        await mail_pass(s, transport)

    async with anyio.create_task_group() as tg:
        tg.start_soon(_loop, svc, stopping, requests)
        tg.start_soon(_loop, svc, stopping, mail)
