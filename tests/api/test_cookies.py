"""Cookies behind a TLS-terminating proxy: `relatch serve` sees plain http (proxy headers are
not trusted for the scheme), but a deployment whose RELATCH_PUBLIC_URL is https must still
mark every cookie Secure, or a network attacker reads it from one plain-http request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from relatch.settings import Settings
from tests.conftest import Account
from tests.conftest import test_settings as make_settings
from tests.helpers.api import login


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def set_cookies(resp: httpx.Response, name: str) -> list[str]:
    found = [h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found


def test_session_cookie_is_secure(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": acct.password, "newPassword": "amber kettle on the moor"},
        headers={"x-jwt-token": token},
    )
    assert resp.json() == {"success": True}
    assert all("Secure" in c for c in set_cookies(resp, "jwt"))


def test_page_cookies_are_secure(client: TestClient) -> None:
    page = client.get("/reset-password")
    assert all("Secure" in c for c in set_cookies(page, "relatch_csrf"))
    carried = client.get(
        "/reset-password?email=ada%40example.com&code=ABCD-EFGH", follow_redirects=False
    )
    assert carried.status_code == 303
    assert all("Secure" in c for c in set_cookies(carried, "relatch_reset_code"))
