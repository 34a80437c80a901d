"""A changed address in the tests: ask, read the code and the undo link from the mail."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.app import CODE_LINE, Mailbox

CHANGE = "/v1/api/user/change-email"
CONFIRM = "/v1/api/user/change-email/confirm"
UNDO_PATH = "/change-email/undo"
REJECTED = {"success": False, "error": "Invalid or expired address-change code"}
CODE_SUBJECT = "address-change code"
TAKEN_SUBJECT = "Someone tried to use your address"
CHANGED_SUBJECT = "Your Relatch address was changed"
UNDO_RE = re.compile(r"^(http://relatch\.test/change-email/undo\?token=\S+?)\r?$", re.MULTILINE)


def ask(client: TestClient, headers: dict[str, str], new_email: str) -> Any:
    resp = client.post(CHANGE, json={"newEmail": new_email}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def confirm(client: TestClient, headers: dict[str, str], code: str) -> Any:
    resp = client.post(CONFIRM, json={"code": code}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def subjects(mailbox: Mailbox, address: str) -> list[str]:
    mailbox.run_workers()
    return [str(m["Subject"]) for m in mailbox.to(address)]


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def last_code(mailbox: Mailbox, address: str) -> str:
    """The code of the newest address-change mail to `address`."""
    mailbox.run_workers()
    mails = [m for m in mailbox.to(address) if CODE_SUBJECT in str(m["Subject"])]
    assert mails, f"no address-change code mail for {address}"
    found = CODE_LINE.search(plain(mails[0]))
    assert found, "no code alone on a line"
    return found.group(1)


def change(client: TestClient, mailbox: Mailbox, headers: dict[str, str], new_email: str) -> None:
    """The whole change, with the code read from the new address's mailbox."""
    assert ask(client, headers, new_email) == {"success": True}
    assert confirm(client, headers, last_code(mailbox, new_email)) == {"success": True}


def changed_notice(mailbox: Mailbox, address: str) -> EmailMessage:
    mailbox.run_workers()
    notices = [m for m in mailbox.to(address) if CHANGED_SUBJECT in str(m["Subject"])]
    assert notices, f"no address-changed notice to {address}"
    return notices[0]


def undo_link(mailbox: Mailbox, address: str) -> str:
    """The undo link of the newest address-changed notice to `address`, as a path."""
    notice = changed_notice(mailbox, address)
    found = UNDO_RE.search(plain(notice))
    assert found, "no undo link alone on a line"
    html = notice.get_body(preferencelist=("html",))
    assert html is not None and found.group(1).replace("&", "&amp;") in html.get_content()
    return found.group(1).removeprefix("http://relatch.test")
