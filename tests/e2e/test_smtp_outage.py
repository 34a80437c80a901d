"""An SMTP outage delays mail, never loses it; a permanent refusal dead-letters one mail only.

Issue 10, "SMTP outage": while the relay is down, reset requests still answer at once and
their mails wait in the outbox, retried with backoff, each sent exactly once when it is back.
A relay answering 550 for one recipient ends that mail `abandoned` at once (retrying a
permanent refusal only delays the dead letter), visible to the operator and logged at ERROR
once, while the mails to other recipients keep flowing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.mail import worker
from relatch.mail.transports import SMTPTransport
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.e2e.servers import SMTPInbox, free_port

MAILS = 5


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Several reset requests come from one test client: the per-IP limit is not under test.
    return make_settings(tmp_path, db_url, limit_reset_per_ip="off")


class RefusingRelay(SMTPInbox):
    """Accepts every recipient but one, which it refuses for good (550)."""

    refused: str = ""

    async def handle_RCPT(  # noqa: N802
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def controllers() -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for controller in started:
        controller.stop()


def start(controllers: list[Controller], inbox: SMTPInbox) -> None:
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    controllers.append(controller)


def request_resets(svc: Services, client: TestClient, emails: list[str]) -> None:
    for email in emails:
        resp = client.post("/v1/api-user-request-reset-password", json={"email": email})
        # Answered at once: the request never waits for the relay.
        assert resp.status_code == 200 and resp.json() == {"success": True}
    assert reset_requests.process_requests(svc) == len(emails)


def rows(svc: Services) -> list[OutboxMessage]:
    with svc.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def deliver(svc: Services, transport: SMTPTransport) -> int:
    return anyio.run(worker.deliver_due, svc, transport)


def test_relay_down_then_back_every_mail_arrives_exactly_once(
    svc: Services,
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    controllers: list[Controller],
) -> None:
    port = free_port()  # nothing listens on it yet: the relay is down
    transport = SMTPTransport(f"smtp://127.0.0.1:{port}", timeout=5)
    emails = [str(make_account().email) for _ in range(MAILS)]
    request_resets(svc, client, emails)

    assert deliver(svc, transport) == 0
    queued = rows(svc)
    assert len(queued) == MAILS
    for row in queued:
        # Kept, the try counted, the next one moved out by the backoff.
        assert row.status == "pending" and row.attempts == 1
        assert (row.next_attempt_at - clock.now).total_seconds() == worker.backoff(1)
        assert row.last_error
    # Not due yet: a pass before the backoff tries nothing.
    assert deliver(svc, transport) == 0
    assert all(r.attempts == 1 for r in rows(svc))

    inbox = SMTPInbox(port=port)  # the relay returns, on the same port
    start(controllers, inbox)
    clock.advance(worker.backoff(1))
    assert deliver(svc, transport) == MAILS
    clock.advance(worker.MAX_BACKOFF)
    assert deliver(svc, transport) == 0  # nothing sent twice

    assert Counter(str(m["To"]) for m in inbox.messages) == Counter(emails)
    assert all(m["Subject"] and "reset" in str(m["Subject"]) for m in inbox.messages)
    assert {(r.status, r.attempts) for r in rows(svc)} == {("sent", 2)}


def test_a_permanent_refusal_abandons_that_mail_and_the_others_flow(
    svc: Services,
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    controllers: list[Controller],
    cli: CliRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relatch.mail.worker")
    emails = [str(make_account().email) for _ in range(MAILS)]
    refused = emails[2]
    relay = RefusingRelay(port=free_port())
    relay.refused = refused
    start(controllers, relay)
    transport = SMTPTransport(f"smtp://127.0.0.1:{relay.port}", timeout=5)
    request_resets(svc, client, emails)

    assert deliver(svc, transport) == MAILS - 1
    # Later passes, far past every backoff, never try the refused mail again.
    for _ in range(3):
        clock.advance(worker.MAX_BACKOFF)
        assert deliver(svc, transport) == 0

    assert Counter(str(m["To"]) for m in relay.messages) == Counter(
        e for e in emails if e != refused
    )
    by_recipient = {r.recipient: r for r in rows(svc)}
    dead = by_recipient.pop(refused)
    # Abandoned on the first refusal, not after RELATCH_MAIL_MAX_ATTEMPTS tries.
    assert dead.status == "abandoned" and dead.attempts == 1
    assert dead.last_error and "550" in dead.last_error
    assert dead.body_text == "" and dead.body_html == ""  # the code is not kept
    assert {r.status for r in by_recipient.values()} == {"sent"}

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "abandoned" in errors[0].getMessage() and str(dead.id) in errors[0].getMessage()
    # Privacy: the relay quoted the address; the row keeps it, no log line does.
    assert refused in (dead.last_error or "")
    assert all(refused not in r.getMessage() for r in caplog.records)

    out = cli.invoke(cli_app, ["mail", "list", "--failed"])
    assert out.exit_code == 0, out.output
    (line,) = out.output.strip().splitlines()
    assert refused in line and "550" in line and "1 tries" in line


def test_temporary_refusals_are_still_retried(
    svc: Services,
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    controllers: list[Controller],
) -> None:
    """A 4xx is not permanent: the mail waits for the backoff and is sent later."""
    email = str(make_account().email)

    class Greylisting(SMTPInbox):
        async def handle_RCPT(  # noqa: N802
            self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
        ) -> str:
            if not greylisted:
                greylisted.append(address)
                return "451 4.7.1 greylisted, try later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    greylisted: list[str] = []
    relay = Greylisting(port=free_port())
    start(controllers, relay)
    transport = SMTPTransport(f"smtp://127.0.0.1:{relay.port}", timeout=5)
    request_resets(svc, client, [email])

    assert deliver(svc, transport) == 0
    (row,) = rows(svc)
    assert row.status == "pending" and row.attempts == 1
    clock.advance(worker.backoff(1))
    assert deliver(svc, transport) == 1
    assert [str(m["To"]) for m in relay.messages] == [email]
