"""Graceful shutdown of the workers (issue 10): they stop between items, never inside one.

Owner's side: a mail claimed when the process stops is sent or given back (never left
`sending` until its claim expires), a reset request is decided or left recorded for the
next pass, and the workers stop at once instead of at their next poll.
(The real process under SIGTERM: tests/e2e/test_shutdown.py.)
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from relatch.core.meta import RequestMeta
from relatch.mail.compose import Mail
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.storage.models import OutboxMessage, ResetRequest
from relatch.workers import Workers
from tests.api.test_poison_items import plant


class StoppingRelay:
    """Accepts every mail; the process is told to stop while the first is being sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.workers: Workers | None = None

    async def send(self, message: Mail) -> None:
        if self.workers is not None and not self.sent:
            self.workers.stop()  # SIGTERM arrives mid-send
        self.sent.append(message.recipient)


def _outbox(svc: Services) -> list[OutboxMessage]:
    with svc.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_stop_mid_send_finishes_that_mail_and_gives_back_the_rest(svc: Services) -> None:
    for n in range(3):
        plant(svc, f"user{n}@example.com", n)
    relay = StoppingRelay()
    workers = Workers(svc, relay)
    relay.workers = workers

    anyio.run(workers.mail_pass)

    # The mail being sent when the stop came is sent and marked so...
    assert relay.sent == ["user0@example.com"]
    rows = _outbox(svc)
    assert rows[0].status == "sent"
    # ...the ones claimed with it are pending again, due now, their try not counted.
    for row in rows[1:]:
        assert (row.status, row.attempts, row.claimed_until) == ("pending", 0, None)
    # The next process sends them.
    later = StoppingRelay()
    anyio.run(Workers(svc, later).mail_pass)
    assert later.sent == ["user1@example.com", "user2@example.com"]


def test_a_stop_leaves_the_reset_requests_not_reached_recorded(
    svc: Services, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stop is asked between transactions: one request per transaction here.
    monkeypatch.setattr(reset_requests, "DECISIONS_PER_TRANSACTION", 1)
    accounts = [make_account() for _ in range(3)]
    for acct in accounts:
        reset_requests.request_reset(svc, acct.email, RequestMeta())
    asked = iter([False, True, True])

    handled = reset_requests.process_requests(svc, should_stop=lambda: next(asked))

    # One decided whole (its mail queued), the others still recorded for the next pass.
    assert handled == 1
    assert [m.recipient for m in _outbox(svc)] == [accounts[0].email]
    with svc.sessions() as s:
        left = list(s.scalars(select(ResetRequest.email).order_by(ResetRequest.id)))
    assert left == [accounts[1].email, accounts[2].email]


def test_stop_wakes_the_workers_at_once(svc: Services) -> None:
    # A poll long past the 10 s bound: only the wake-up can end the wait in time.
    svc.settings.worker_poll_seconds = 60
    relay = StoppingRelay()
    workers = Workers(svc, relay)

    async def main() -> float:
        stopping = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(workers.run_forever, stopping)
            await anyio.sleep(0.3)  # both loops are in their poll wait
            began = time.monotonic()
            stopping.set()
            workers.stop()
        return time.monotonic() - began

    took = anyio.run(main)
    assert took < 2, f"workers took {took:.1f}s to stop"
