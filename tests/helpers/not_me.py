"""The "this was not me" link: change a password, find the link in the notice."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.api import login
from tests.helpers.app import Account, Mailbox

LINK_RE = re.compile(r"^(http://relatch\.test/not-me\?token=\S+)$", re.MULTILINE)
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
    mailbox.run_workers()
    notices = [m for m in mailbox.to(address) if "password was changed" in str(m["Subject"])]
    assert notices, "no password-changed notice"
    body = notices[0].get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK_RE.search(body.get_content())
    assert found, "no not-me link alone on a line"
    html = notices[0].get_body(preferencelist=("html",))
    assert html is not None and found.group(1).replace("&", "&amp;") in html.get_content()
    return found.group(1).removeprefix("http://relatch.test")


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
