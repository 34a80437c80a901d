"""The owner's notices (issue 14) as the mailbox receives them: by subject, their text,
and the "this was not me" link they carry."""

from __future__ import annotations

from email.message import EmailMessage

from tests.helpers.app import Mailbox
from tests.helpers.not_me import LINK_RE

NEW_SIGN_IN = "New sign-in to your Relatch account"
API_KEY_CREATED = "A new API key was created for your Relatch account"
GUESSING = "Someone is trying to sign in to your Relatch account"


def received(mailbox: Mailbox, address: str, subject: str) -> list[EmailMessage]:
    """The mails with exactly this subject delivered to `address` (workers run first)."""
    mailbox.run_workers()
    return [m for m in mailbox.to(address) if str(m["Subject"]) == subject]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def not_me_path(mail: EmailMessage) -> str:
    """The notice's not-me link (alone on its line in the text part, the same in the HTML
    part), as a path with its query."""
    found = LINK_RE.search(text_of(mail))
    assert found, "no not-me link alone on a line"
    assert found.group(1).replace("&", "&amp;") in html_of(mail)
    return found.group(1).removeprefix("http://relatch.test")
