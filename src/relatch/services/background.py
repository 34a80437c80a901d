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


async def run_once(svc: Services, transport: Transport, extra: list[Step] | None = None) -> None:
    await anyio.to_thread.run_sync(reset.process_requests, svc)
    await deliver_due(svc, transport)
    # Audit rows past RELATCH_AUDIT_RETENTION_DAYS (at most every 10 minutes per process).
    await anyio.to_thread.run_sync(audit.prune, svc)
    # Ended rate-limit windows (at most once a minute per process; no-op on Redis).
    await anyio.to_thread.run_sync(svc.limits.prune, svc.clock())
    for step in extra or []:
        await step(svc)


async def run_forever(
    svc: Services, transport: Transport, stopping: anyio.Event, extra: list[Step] | None = None
) -> None:
    while not stopping.is_set():
        try:
            await run_once(svc, transport, extra)
        except Exception:
            # A database hiccup must not kill the worker; the rows wait for the next pass.
            log.exception("background pass failed")
        woke = await anyio.to_thread.run_sync(
            svc.wake.wait, svc.settings.worker_poll_seconds, abandon_on_cancel=True
        )
        if woke:
            svc.wake.clear()
