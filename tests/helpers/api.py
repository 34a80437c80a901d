"""Calls of the JSON API that many test modules make: sign in, ask for a reset code,
API keys."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.app import Account
from tests.helpers.notices import Mailbox

KEYS = "/v1/api/user/apikeys"


def post(client: TestClient, path: str, body: Any) -> Any:
    resp = client.post(f"/v1/{path}", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def request_code(client: TestClient, mailbox: Mailbox, email: str) -> str:
    assert post(client, "api-user-request-reset-password", {"email": email}) == {"success": True}
    return mailbox.last_code(email)


def login(client: TestClient, username: str, password: str) -> Any:
    return post(client, "api-login", {"username": username, "password": password})


def session_headers(client: TestClient, acct: Account) -> dict[str, str]:
    resp = client.post("/v1/api-login", json={"username": acct.username, "password": acct.password})
    assert resp.json()["success"] is True, resp.text
    return {"x-jwt-token": resp.json()["token"]}


def create_key(client: TestClient, headers: dict[str, str], name: str | None = "ci") -> Any:
    resp = client.post(KEYS, json={"name": name} if name else None, headers=headers)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["success"] is True, data
    return data
