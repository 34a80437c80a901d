"""A reset revokes every session JWT, whichever scheme carries it; API keys stay by design."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account, Mailbox
from tests.helpers.api import create_key, session_headers

NOT_AUTHENTICATED = {"success": False, "error": "Not authenticated"}


def reset_password(client: TestClient, mailbox: Mailbox, acct: Account) -> None:
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}


def me(client: TestClient, scheme: str, credential: str) -> Any:
    if scheme == "x-jwt-token":
        return client.get("/v1/api/user", headers={"x-jwt-token": credential})
    if scheme == "jwt-cookie":
        return client.get("/v1/api/user", headers={"cookie": f"jwt={credential}"})
    return client.get("/v1/api/user", headers={"x-api-key": credential})


@pytest.mark.parametrize("scheme", ["x-jwt-token", "jwt-cookie"])
def test_session_jwt_refused_after_reset(
    client: TestClient, make_account: Any, mailbox: Mailbox, scheme: str
) -> None:
    acct = make_account()
    jwt = session_headers(client, acct)["x-jwt-token"]
    assert me(client, scheme, jwt).status_code == 200
    reset_password(client, mailbox, acct)
    stale = me(client, scheme, jwt)
    assert stale.status_code == 401 and stale.json() == NOT_AUTHENTICATED
    acct.password = "a brand new passphrase"
    fresh = session_headers(client, acct)["x-jwt-token"]
    assert me(client, scheme, fresh).status_code == 200


def test_api_key_stays_valid_after_reset(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct = make_account()
    key = create_key(client, session_headers(client, acct))["apiKey"]
    reset_password(client, mailbox, acct)
    resp = me(client, "x-api-key", key)
    assert resp.status_code == 200 and resp.json()["email"] == acct.email


def test_a_bad_credential_is_not_rescued_by_a_good_one(
    client: TestClient, make_account: Any
) -> None:
    # A presented but invalid credential is a 401, even with a valid one beside it.
    acct = make_account()
    jwt = session_headers(client, acct)["x-jwt-token"]
    resp = client.get("/v1/api/user", headers={"x-api-key": "rl_bad", "x-jwt-token": jwt})
    assert resp.status_code == 401
