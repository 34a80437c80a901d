"""One SMTP connection for a whole pass of the mail worker, against a real relay (aiosmtpd),
and a relay error mid-batch loses nothing (issue 12).

Owner's side: a connection, EHLO (and STARTTLS and AUTH with a real relay) per mail made a
backlog crawl. Now a pass keeps one connection; a send that fails drops it, and the next
send opens a fresh one. A relay that hangs up on a connection kept open (its cap on mails
per connection, an idle timeout) costs the mail no try: it is sent again at once, on a
new connection, within its deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from relatch.mail import worker
from relatch.mail.transports import SMTPTransport
from relatch.services.context import Services
from relatch.storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.e2e.servers import SMTPInbox, free_port
from tests.storage.test_worker_drain import queue_mails

pytestmark = pytest.mark.e2e

MAILS = 30


class CountingRelay(SMTPInbox):
    """A real relay that counts its connections (one EHLO each) and can refuse one mail."""

    def __init__(self, refuse: int | None = None) -> None:
        super().__init__(port=free_port())
        self.connections = 0
        self.refuse = refuse  # the mail (1-based, by arrival) answered 451 once
        self.arrived = 0
        self._count = threading.Lock()

    async def handle_EHLO(  # noqa: N802
        self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._count:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._count:
            self.arrived += 1
            refused = self.arrived == self.refuse
        if refused:
            return "451 4.3.0 local error, try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay_factory() -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(refuse: int | None = None, **smtp: Any) -> CountingRelay:
        relay = CountingRelay(refuse)
        controller = Controller(relay, hostname="127.0.0.1", port=relay.port, **smtp)
        controller.start()
        controllers.append(controller)
        return relay

    yield start
    for controller in controllers:
        controller.stop()


def deliver(svc: Services, relay: CountingRelay) -> int:
    return anyio.run(
        worker.deliver_due, svc, SMTPTransport(f"smtp://127.0.0.1:{relay.port}", timeout=5)
    )


def rows(svc: Services) -> list[OutboxMessage]:
    with svc.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def received(relay: CountingRelay) -> list[str]:
    return sorted(str(m["To"]) for m in relay.messages)


def queued(count: int) -> list[str]:
    return sorted(f"backlog{n}@example.com" for n in range(count))


def test_a_pass_sends_many_mails_over_one_connection(svc: Services, relay_factory: Any) -> None:
    relay = relay_factory()
    queue_mails(svc, MAILS)
    assert deliver(svc, relay) == MAILS
    assert received(relay) == queued(MAILS)
    assert relay.connections == 1
    assert {(r.status, r.attempts) for r in rows(svc)} == {("sent", 1)}


def test_a_relay_error_mid_batch_reconnects_and_loses_nothing(
    svc: Services, relay_factory: Any, clock: FakeClock
) -> None:
    relay = relay_factory(refuse=MAILS // 2)  # a 451 in the middle of the pass
    queue_mails(svc, MAILS)

    assert deliver(svc, relay) == MAILS - 1
    # The failed send dropped its connection; the mails after it went over a new one.
    assert relay.connections == 2
    failed = [r for r in rows(svc) if r.status != "sent"]
    assert [(r.status, r.attempts) for r in failed] == [("pending", 1)]
    assert failed[0].last_error and "451" in failed[0].last_error
    # Kept, not lost: sent at its retry, once.
    clock.advance(worker.backoff(1))
    assert deliver(svc, relay) == 1
    assert received(relay) == queued(MAILS)
    assert {r.status for r in rows(svc)} == {"sent"}


def test_a_relay_that_hangs_up_kept_connections_costs_no_try(
    svc: Services, relay_factory: Any
) -> None:
    # aiosmtpd's own per-connection cap: the 4th MAIL on a connection gets "421 ... too
    # many times" and the connection is closed, as relays capping mails per connection do.
    relay = relay_factory(command_call_limit={"MAIL": 3})
    queue_mails(svc, 10)

    assert deliver(svc, relay) == 10
    assert received(relay) == queued(10)
    assert relay.connections == 4  # 3 + 3 + 3 + 1
    # Each mail went out on its first try: the hang-up was the connection's, not a failure.
    assert {(r.status, r.attempts) for r in rows(svc)} == {("sent", 1)}
