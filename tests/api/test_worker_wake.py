"""The workers wake on new work instead of waiting out their poll, except for reset
requests (issue 12).

Owner's side: a mail queued in this process (a reset code, a notice, an activation mail)
goes out at once, not at the mail worker's next poll. Enumeration by timing (services/
reset_requests.request_reset): a reset request wakes nothing, so the extra work of a known address
never lands right behind the request where a prober could time it; the request worker
picks it up on its own schedule.
"""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
from sqlalchemy import func, select

from relatch.core.meta import RequestMeta
from relatch.mail.transports import MailDirTransport, list_messages
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.storage import outbox
from relatch.storage.db import transaction
from relatch.storage.models import ResetRequest
from relatch.workers import Workers

POLL = 60  # seconds: far past every bound below, so only a wake-up can explain a mail


def context(to: str) -> dict[str, object]:
    return {"name": "N", "code": "ABCD-EFGH", "link_token": "t", "email": to, "minutes": 10}


def queue_notice(svc: Services, to: str) -> None:
    with transaction(svc.sessions) as s:
        outbox.enqueue(s, svc.renderer, "reset_code", to, context(to), svc.clock())


def recorded(svc: Services) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(ResetRequest)) or 0)


def test_a_mail_queued_in_this_process_wakes_the_mail_worker_and_a_request_wakes_none(
    svc: Services,
) -> None:
    svc.settings.worker_poll_seconds = POLL
    out = svc.settings.mail_dir
    workers = Workers(svc, MailDirTransport(out))

    async def main() -> float:
        stopping = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(workers.run_forever, stopping)
            await anyio.sleep(0.3)  # both loops ran their first pass and wait out the poll
            # A reset request: recorded, and nobody woken.
            await anyio.to_thread.run_sync(
                reset_requests.request_reset, svc, "someone@example.com", RequestMeta()
            )
            assert not workers.wake.is_set() and not workers.mail_wake.is_set()
            # A rolled-back transaction that queued a mail wakes nobody either.
            try:
                with transaction(svc.sessions) as s:
                    outbox.enqueue(
                        s, svc.renderer, "reset_code", "x@example.com", context("x"), svc.clock()
                    )
                    raise RuntimeError("rolled back")
            except RuntimeError:
                pass
            assert not workers.mail_wake.is_set()
            began = time.monotonic()
            await anyio.to_thread.run_sync(queue_notice, svc, "owner@example.com")
            with anyio.fail_after(10):  # generous; the poll alone would take a minute
                while not list_messages(out):
                    await anyio.sleep(0.02)
            took = time.monotonic() - began
            assert await anyio.to_thread.run_sync(recorded, svc) == 1  # still waiting its turn
            stopping.set()
            workers.stop()
        return took

    took = anyio.run(main)
    assert took < POLL / 2
    assert len(list_messages(out)) == 1


def test_the_wake_up_is_withdrawn_when_the_workers_stop(svc: Services) -> None:
    workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))

    async def main() -> None:
        stopping = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(workers.run_forever, stopping)
            await anyio.sleep(0.1)
            stopping.set()
            workers.stop()

    anyio.run(main)
    workers.mail_wake.clear()
    queue_notice(svc, "later@example.com")  # a commit after the workers ended
    assert not workers.mail_wake.is_set()


def test_the_workers_run_on_threads_of_their_own_not_the_requests(svc: Services) -> None:
    """Issue 12: under load the requests hold every thread of anyio's default limiter; the
    workers must still drain their queues (they had delivered almost no mail under 64
    writers until the load stopped). Here the default limiter is held whole, as a flood of
    requests would hold it, and one pass of the workers still turns every reset request
    into a decision and sends every mail. The other side: the requests' threads are not
    the workers' (none of the default limiter's tokens is borrowed by them meanwhile)."""
    out = svc.settings.mail_dir
    for n in range(5):
        reset_requests.request_reset(svc, f"stranger{n}@example.com", RequestMeta())
        queue_notice(svc, f"owner{n}@example.com")
    workers = Workers(svc, MailDirTransport(out))

    async def main() -> None:
        requests_threads = anyio.to_thread.current_default_thread_limiter()
        requests_threads.total_tokens = 1
        flood = object()
        await requests_threads.acquire_on_behalf_of(flood)  # every request thread taken
        try:
            with anyio.fail_after(30):  # on the requests' threads it would wait forever
                await workers.run_once()
            assert requests_threads.borrowed_tokens == 1  # only the flood's
        finally:
            requests_threads.release_on_behalf_of(flood)

    anyio.run(main)
    assert recorded(svc) == 0
    assert len(list_messages(out)) == 5
