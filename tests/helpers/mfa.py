"""The second factor's notices (issue 14) as the owner reads them, and the CLI on the
test's clock (operator commands that wait: `relatch user mfa-reset`)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import anyio
import pytest

from relatch import workers as background
from relatch.app import build
from relatch.cli import context
from relatch.mail.transports import SMTPTransport
from relatch.services.context import Services
from tests.e2e.servers import SMTPInbox, smtp_server
from tests.helpers.app import FakeClock, Mailbox
from tests.helpers.not_me import LINK_RE

RECOVERY = "/v1/api/user/mfa/recovery-codes"
STATUS = "/v1/api/user/mfa"


class SMTPMailbox(Mailbox):
    """The workers deliver to a real SMTP server (aiosmtpd); the test reads what it got."""

    def __init__(self, svc: Services, inbox: SMTPInbox) -> None:
        super().__init__(svc)
        self.inbox = inbox

    def run_workers(self) -> None:
        transport = SMTPTransport(f"smtp://127.0.0.1:{self.inbox.port}")
        anyio.run(background.run_once, self.svc, transport)

    def messages(self) -> list[EmailMessage]:
        return list(reversed(self.inbox.messages))  # newest first, as the dev outbox


def smtp_mailbox(svc: Services) -> Iterator[SMTPMailbox]:
    """Body of a `mailbox` fixture whose mail goes through a real SMTP server."""
    with smtp_server() as inbox:
        yield SMTPMailbox(svc, inbox)


def mails(mailbox: Mailbox, address: str, subject: str) -> list[EmailMessage]:
    """The mails to `address` whose subject holds `subject`, after a worker pass."""
    mailbox.run_workers()
    return [m for m in mailbox.to(address) if subject in str(m["Subject"])]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")  # CRLF after SMTP


def the_notice(mailbox: Mailbox, address: str, subject: str) -> str:
    """The plain text of the one mail of this subject; it carries a "not me" link, also
    in its HTML part."""
    found = mails(mailbox, address, subject)
    assert len(found) == 1, [str(m["Subject"]) for m in mailbox.to(address)]
    text = text_of(found[0])
    link = LINK_RE.search(text)
    assert link, "no not-me link alone on a line"
    html = found[0].get_body(preferencelist=("html",))
    assert html is not None and link.group(1).replace("&", "&amp;") in html.get_content()
    return text


def not_me_path(text: str) -> str:
    found = LINK_RE.search(text)
    assert found
    return found.group(1).removeprefix("http://relatch.test")


def cli_on_clock(monkeypatch: pytest.MonkeyPatch, svc: Services, clock: FakeClock) -> None:
    """CLI commands build their services on the test's settings and clock."""
    monkeypatch.setattr(context, "_builder", [lambda _settings: build(svc.settings, clock=clock)])
