"""The outbox: delivered through a real SMTP server, retried with backoff, never dropped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.parser import Parser
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from relatch.core.meta import RequestMeta
from relatch.mail import worker
from relatch.mail.transports import SMTPTransport
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.storage.models import OutboxMessage
from tests.api.test_poison_items import plant
from tests.conftest import FakeClock
from tests.e2e.servers import SMTPInbox, free_port


class FlakySMTP(SMTPInbox):
    """A real SMTP server that answers 451 (try later) to the first `failures` messages."""

    failures = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def flaky() -> Iterator[FlakySMTP]:
    inbox = FlakySMTP(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def rows(svc: Services) -> list[OutboxMessage]:
    with svc.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def deliver(svc: Services, inbox: SMTPInbox) -> int:
    return anyio.run(worker.deliver_due, svc, SMTPTransport(f"smtp://127.0.0.1:{inbox.port}"))


def queue_reset_mail(svc: Services, make_account: Any) -> str:
    acct = make_account()
    reset_requests.request_reset(svc, acct.email, RequestMeta())
    reset_requests.process_requests(svc)
    return str(acct.email)


def test_delivered_multipart_and_body_blanked(
    svc: Services, flaky: FlakySMTP, make_account: Any
) -> None:
    email = queue_reset_mail(svc, make_account)
    assert deliver(svc, flaky) == 1
    (msg,) = flaky.messages
    assert msg["To"] == email
    assert msg.get_body(preferencelist=("plain",)) is not None
    assert msg.get_body(preferencelist=("html",)) is not None
    (row,) = rows(svc)
    assert row.status == "sent" and row.attempts == 1
    # The code must not stay in the database once delivered.
    assert row.body_text == "" and row.body_html == ""


def test_retried_with_backoff_after_temporary_failure(
    svc: Services, flaky: FlakySMTP, make_account: Any, clock: FakeClock
) -> None:
    flaky.failures = 2
    queue_reset_mail(svc, make_account)
    assert deliver(svc, flaky) == 0
    (row,) = rows(svc)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and "451" in row.last_error
    assert (row.next_attempt_at - clock.now).total_seconds() == worker.backoff(1) == 5
    assert deliver(svc, flaky) == 0  # not due yet: nothing is tried
    assert rows(svc)[0].attempts == 1
    clock.advance(5)
    assert deliver(svc, flaky) == 0
    row = rows(svc)[0]
    assert row.attempts == 2
    assert (row.next_attempt_at - clock.now).total_seconds() == worker.backoff(2) == 10
    clock.advance(10)
    assert deliver(svc, flaky) == 1
    assert rows(svc)[0].status == "sent"
    assert len(flaky.messages) == 1


def test_abandoned_after_max_attempts_and_logged(
    svc: Services, make_account: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue_reset_mail(svc, make_account)
    closed = free_port()  # nothing listens here: connection refused
    transport = SMTPTransport(f"smtp://127.0.0.1:{closed}", timeout=2)
    for _ in range(svc.settings.mail_max_attempts):
        anyio.run(worker.deliver_due, svc, transport)
        clock.advance(worker.MAX_BACKOFF)
    (row,) = rows(svc)
    assert row.status == "abandoned"
    assert row.attempts == svc.settings.mail_max_attempts
    assert row.body_text == ""
    assert any("abandoned" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_crashed_claim_is_taken_over(svc: Services, make_account: Any, clock: FakeClock) -> None:
    queue_reset_mail(svc, make_account)
    (claimed,) = worker.claim_due(svc)
    tried = worker.renew(svc, claimed)  # the try begins...
    assert tried is not None and tried.attempts == 1
    assert worker.claim_due(svc) == []  # claimed: nobody else takes it
    clock.advance(svc.settings.mail_claim_seconds + 1)
    (again,) = worker.claim_due(svc)  # ...the first worker died: the claim expired
    assert again.id == claimed.id and again.token != claimed.token
    assert again.attempts == 1  # the dead worker's try was counted


def test_backoff_grows_and_caps() -> None:
    assert [worker.backoff(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert worker.backoff(30) == worker.MAX_BACKOFF


class Envelopes:
    """A real SMTP server that keeps each envelope as the relay saw it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@contextmanager
def relay(*, smtputf8: bool) -> Iterator[tuple[Envelopes, SMTPTransport]]:
    handler, port = Envelopes(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield handler, SMTPTransport(f"smtp://127.0.0.1:{port}", timeout=5)
    finally:
        controller.stop()


def test_the_bytes_built_are_the_bytes_the_relay_gets(svc: Services) -> None:
    # The message goes out as built (mail/compose.py), its envelope from the row: MAIL FROM
    # the sender's address, RCPT TO the row's recipient alone.
    plant(svc, "ada@example.com", 1)
    with relay(smtputf8=False) as (handler, transport):
        assert anyio.run(worker.deliver_due, svc, transport) == 1
    ((sender, recipients, content),) = handler.got
    assert sender == "no-reply@localhost" and recipients == ["ada@example.com"]
    msg = message_from_bytes(content, policy=policy.default)
    assert msg["To"] == "ada@example.com" and msg["Subject"] == "Mail 1"
    assert msg["Message-ID"] == rows(svc)[0].message_id


def test_a_non_ascii_address_goes_out_over_smtputf8(svc: Services) -> None:
    plant(svc, "zoë@exämple.com", 1)
    with relay(smtputf8=True) as (handler, transport):
        assert anyio.run(worker.deliver_due, svc, transport) == 1
    ((_sender, recipients, content),) = handler.got
    assert recipients == ["zoë@exämple.com"]
    msg = Parser(policy=policy.default).parsestr(content.decode("utf-8"))  # RFC 6532
    assert msg["To"].addresses[0].addr_spec == "zoë@exämple.com"
    assert rows(svc)[0].status == "sent"


def test_a_relay_without_smtputf8_keeps_a_non_ascii_mail_queued(svc: Services) -> None:
    # Never a loss: the relay cannot take the address, so the try fails and is retried.
    plant(svc, "zoë@exämple.com", 1)
    with relay(smtputf8=False) as (handler, transport):
        assert anyio.run(worker.deliver_due, svc, transport) == 0
    assert handler.got == []
    (row,) = rows(svc)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error and "SMTPUTF8" in row.last_error
