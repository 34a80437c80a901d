"""The "this was not me" link: change a password, find the link in the notice."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.api import login
from tests.helpers.app import Account
from tests.helpers.notices import Mailbox, newest, not_me_path

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
NEW = "amber kettle on the moor"


def change_password(client: TestClient, acct: Account, new: str = NEW) -> str:
    """Change the password through the API; returns the caller's fresh JWT."""
    token = login(client, acct.username, acct.password)["token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": acct.password, "newPassword": new},
        headers={"x-jwt-token": token},
    )
    assert resp.json() == {"success": True}
    client.cookies.clear()
    return str(resp.headers["x-jwt-token"])


def notice_link(mailbox: Mailbox, address: str) -> str:
    """The not-me link of the newest password-changed notice to `address`, as a path."""
    return not_me_path(newest(mailbox, address, "password was changed"))


def open_page(client: TestClient, path: str) -> tuple[Any, str]:
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    found = CSRF_RE.search(page.text)
    assert found
    return page, found.group(1)


def token_of(path: str) -> str:
    return path.split("token=", 1)[1]
