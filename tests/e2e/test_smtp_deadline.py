"""A send fits in the claim lease (issue 10): the SMTP transport's deadline is half of
RELATCH_MAIL_CLAIM_SECONDS (at most 30 s), for the whole exchange, not for each answer.

Why (mail/worker.py): a renewed claim must outlive its send, or another process takes the
mail over while it is being sent and sends it too. aiosmtplib's timeout bounds each answer
only: a relay answering every command slowly stretched one send far past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from relatch.mail import worker
from relatch.mail.compose import Mail
from relatch.mail.transports import SMTPTransport
from relatch.settings import Settings
from tests.e2e.servers import SMTPInbox, free_port
from tests.helpers.mails import as_mail

pytestmark = pytest.mark.e2e

DEADLINE = 0.5
STEP = 0.4  # each answer within the deadline, the whole exchange well past it


@dataclass
class SlowAnswers(SMTPInbox):
    """A relay that takes STEP seconds over each of MAIL, RCPT and the mail itself."""

    async def handle_MAIL(  # noqa: N802
        self, _server: Any, _session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        await asyncio.sleep(STEP)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, _server: Any, _session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        await asyncio.sleep(STEP)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(STEP)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow() -> Iterator[SlowAnswers]:
    relay = SlowAnswers(port=free_port())
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port)
    controller.start()
    yield relay
    controller.stop()


def message() -> Mail:
    msg = EmailMessage()
    msg["From"] = "no-reply@relatch.test"
    msg["To"] = "someone@example.com"
    msg["Subject"] = "deadline"
    msg.set_content("body")
    return as_mail(msg)


def test_a_relay_slow_at_every_step_is_cut_at_the_deadline(slow: SlowAnswers) -> None:
    transport = SMTPTransport(f"smtp://127.0.0.1:{slow.port}", timeout=DEADLINE)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=f"not done within {DEADLINE:g}s"):
        anyio.run(transport.send, message())
    took = time.monotonic() - began
    # Generous: the point is "at the deadline, not after the three slow answers".
    assert took < 3 * STEP, f"send took {took:.2f}s"
    assert slow.messages == []  # cut before the mail: a failed try, retried, not a duplicate


def test_the_same_relay_within_the_deadline_gets_the_mail(slow: SlowAnswers) -> None:
    anyio.run(SMTPTransport(f"smtp://127.0.0.1:{slow.port}", timeout=5).send, message())
    assert [str(m["To"]) for m in slow.messages] == ["someone@example.com"]


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, mail_dir=tmp_path, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(("lease", "deadline"), [(2, 1.0), (60, 30.0), (120, 30.0)])
def test_the_smtp_deadline_is_half_the_lease_at_most(
    tmp_path: Path, lease: int, deadline: float
) -> None:
    config = settings(tmp_path, mail_claim_seconds=lease, smtp_url="smtp://127.0.0.1:25")
    transport = worker.transport_for(SimpleNamespace(settings=config))  # type: ignore[arg-type]
    assert isinstance(transport, SMTPTransport)
    assert transport.timeout == deadline <= lease / 2


@pytest.mark.parametrize("lease", [0, 1, 3601])
def test_a_lease_out_of_bounds_stops_start_up(tmp_path: Path, lease: int) -> None:
    with pytest.raises(ValidationError, match="mail_claim_seconds"):
        settings(tmp_path, mail_claim_seconds=lease)
