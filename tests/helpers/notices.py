"""The mail as tests read it: the dev outbox (`Mailbox`) or what a real SMTP server
received (`SMTPMailbox`, issue 14: the notices are tested "by reading the mail a real
SMTP server receives"), by address and subject; a mail's text and HTML parts, and the
links they carry ("this was not me", an address change's undo)."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import anyio
from sqlalchemy import select

from relatch import workers as background
from relatch.mail.transports import MailDirTransport, SMTPTransport, list_messages
from relatch.services.context import Services
from relatch.storage.models import OutboxMessage
from tests.e2e.servers import SMTPInbox
from tests.helpers.app import ACTIVATION, CODE_LINE, LINK_LINE

# The "this was not me" link, alone on its line of the text part.
LINK_RE = re.compile(r"^(http://relatch\.test/not-me\?token=\S+)$", re.MULTILINE)

NEW_SIGN_IN = "New sign-in to your Relatch account"
API_KEY_CREATED = "A new API key was created for your Relatch account"
GUESSING = "Someone is trying to sign in to your Relatch account"


class Mailbox:
    """The dev outbox of one test, filled by running the workers."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.folder = svc.settings.mail_dir

    def run_workers(self) -> None:
        anyio.run(background.run_once, self.svc, MailDirTransport(self.folder))

    def messages(self) -> list[EmailMessage]:
        """Every mail delivered so far, newest first."""
        out = []
        for path in list_messages(self.folder):
            with path.open("rb") as fh:
                msg = BytesParser(policy=policy.default).parse(fh)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if m["To"] == address]

    def last_code(self, address: str, subject: str = "reset code") -> str:
        """The code alone on a line of the newest mail of this subject (a reset code
        unless said otherwise)."""
        return self._newest_line(address, CODE_LINE, "code alone on a line", subject)

    def last_link(self, address: str) -> str:
        """The mailed link of the newest reset mail, as a path with its query."""
        return self._newest_line(address, LINK_LINE, "reset link", "reset code")

    def last_activation_code(self, address: str) -> str:
        """The code of the newest activation mail (the same format as a reset code)."""
        return self.last_code(address, ACTIVATION)

    def _newest_line(self, address: str, pattern: re.Pattern[str], what: str, subject: str) -> str:
        found = pattern.search(text_of(newest(self, address, subject)))
        assert found, f"no {what} in the mail"
        return found.group(1)


class SMTPMailbox(Mailbox):
    """The workers deliver to a real SMTP server (aiosmtpd); the test reads what it got
    (fixtures `smtp_inbox` and `smtp_mailbox`, tests/conftest.py)."""

    def __init__(self, svc: Services, inbox: SMTPInbox) -> None:
        super().__init__(svc)
        self.inbox = inbox

    def run_workers(self) -> None:
        transport = SMTPTransport(f"smtp://127.0.0.1:{self.inbox.port}")
        anyio.run(background.run_once, self.svc, transport)
        # A failed delivery is retried later, not raised: the mail would stay queued and
        # every "no such mail" check would pass for the wrong reason. So after a pass,
        # everything queued so far must have reached the server.
        with self.svc.sessions() as s:
            unsent = select(OutboxMessage.status, OutboxMessage.last_error)
            left = s.execute(unsent.where(OutboxMessage.status != "sent")).all()
        assert left == [], f"mail not delivered to the SMTP server: {left}"

    def messages(self) -> list[EmailMessage]:
        return list(reversed(self.inbox.messages))  # newest first, as the dev outbox


def mails(mailbox: Mailbox, address: str, subject: str) -> list[EmailMessage]:
    """The mails to `address` whose subject holds `subject`, newest first, after a pass
    of the workers."""
    mailbox.run_workers()
    return [m for m in mailbox.to(address) if subject in str(m["Subject"])]


def newest(mailbox: Mailbox, address: str, subject: str) -> EmailMessage:
    found = mails(mailbox, address, subject)
    assert found, f"no '{subject}' mail for {address}"
    return found[0]


def subjects(mailbox: Mailbox, address: str) -> list[str]:
    """The subjects of every mail to `address`, newest first, after a pass of the workers."""
    mailbox.run_workers()
    return [str(m["Subject"]) for m in mailbox.to(address)]


def _part(mail: EmailMessage, kind: str) -> str:
    body = mail.get_body(preferencelist=(kind,))
    assert body is not None, f"no {kind} part"
    return str(body.get_content()).replace("\r\n", "\n")  # CRLF after SMTP


def text_of(mail: EmailMessage) -> str:
    return _part(mail, "plain")


def html_of(mail: EmailMessage) -> str:
    return _part(mail, "html")


def link_path(mail: EmailMessage, pattern: re.Pattern[str], what: str) -> str:
    """The link `pattern` finds alone on a line of the text part, also in the HTML part,
    as a path with its query."""
    found = pattern.search(text_of(mail))
    assert found, f"no {what} alone on a line"
    assert found.group(1).replace("&", "&amp;") in html_of(mail)
    return found.group(1).removeprefix("http://relatch.test")


def not_me_path(mail: EmailMessage) -> str:
    """The notice's "this was not me" link, as a path with its query."""
    return link_path(mail, LINK_RE, "not-me link")


def the_notice(mailbox: Mailbox, address: str, subject: str) -> EmailMessage:
    """The one mail of this subject to `address`; it carries a "not me" link, also in
    its HTML part."""
    found = mails(mailbox, address, subject)
    assert len(found) == 1, [str(m["Subject"]) for m in mailbox.to(address)]
    not_me_path(found[0])
    return found[0]
