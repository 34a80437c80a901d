"""A changed address in the tests: ask, read the code and the undo link from the mail."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.notices import Mailbox, link_path, newest

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


def last_code(mailbox: Mailbox, address: str) -> str:
    """The code of the newest address-change mail to `address`."""
    return mailbox.last_code(address, CODE_SUBJECT)


def change(client: TestClient, mailbox: Mailbox, headers: dict[str, str], new_email: str) -> None:
    """The whole change, with the code read from the new address's mailbox."""
    assert ask(client, headers, new_email) == {"success": True}
    assert confirm(client, headers, last_code(mailbox, new_email)) == {"success": True}


def changed_notice(mailbox: Mailbox, address: str) -> EmailMessage:
    return newest(mailbox, address, CHANGED_SUBJECT)


def undo_link(mailbox: Mailbox, address: str) -> str:
    """The undo link of the newest address-changed notice to `address`, as a path."""
    return link_path(changed_notice(mailbox, address), UNDO_RE, "undo link")
