"""The TOTP second factor through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from relatch.services.context import Services
from relatch.storage.models_auth import RecoveryCode, TotpFactor
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import session_headers
from tests.helpers.openapi import load_spec, schema_fields
from tests.helpers.totp import MFA, enable, token

REQUIRED = "ERR_TOTP_TOKEN IS REQUIRED"
REJECTED = {"success": False, "error": "Invalid or already used TOTP token"}
LOGIN_FAILED = {"success": False, "error": "Invalid username or password"}


def login(client: TestClient, acct: Account, totp_token: str | None = None, **kw: Any) -> Any:
    body = {"username": acct.username, "password": kw.get("password", acct.password)}
    if totp_token is not None:
        body["totpToken"] = totp_token
    resp = client.post("/v1/api-login", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_totp_required_after_set(
    client: TestClient, make_account: Any, clock: FakeClock, svc: Services
) -> None:
    acct = make_account()
    headers = session_headers(client, acct)
    assert client.get("/v1/api/user", headers=headers).json()["mfaConfigured"] is False
    key, _ = enable(client, clock, headers)
    assert client.get("/v1/api/user", headers=headers).json()["mfaConfigured"] is True

    missing = login(client, acct)
    assert missing["success"] is False and missing["error"].startswith(REQUIRED)
    assert "token" not in missing
    # A wrong password still gives the one usual message, token or not.
    assert login(client, acct, password="wrong password!") == LOGIN_FAILED
    assert login(client, acct, "000000", password="wrong password!") == LOGIN_FAILED
    wrong = "123456" if token(clock, key) != "123456" else "654321"
    clock.advance(30)
    assert login(client, acct, wrong) == REJECTED
    ok = login(client, acct, token(clock, key))
    assert ok["success"] is True and ok["token"]
    assert client.get("/v1/api/user", headers={"x-jwt-token": ok["token"]}).status_code == 200
    # The key is stored sealed, never in clear.
    with svc.sessions() as s:
        row = s.get(TotpFactor, acct.id)
    assert row is not None and row.sealed_secret and key not in row.sealed_secret


def test_replay_refused(client: TestClient, make_account: Any, clock: FakeClock) -> None:
    acct = make_account()
    key, _ = enable(client, clock, session_headers(client, acct))
    # The token that set the key cannot be used again to sign in (same step).
    assert login(client, acct, token(clock, key)) == REJECTED
    clock.advance(30)
    used = token(clock, key)
    assert login(client, acct, used)["success"] is True
    assert login(client, acct, used) == REJECTED  # replay within the step
    clock.advance(30)  # still inside the drift window, but that step is used
    assert login(client, acct, used) == REJECTED
    assert login(client, acct, token(clock, key))["success"] is True


def test_recovery_code_single_use(
    client: TestClient, make_account: Any, clock: FakeClock, svc: Services
) -> None:
    acct = make_account()
    _, recovery = enable(client, clock, session_headers(client, acct))
    code = recovery[3]
    assert login(client, acct, code.lower().replace("-", ""))["success"] is True
    assert login(client, acct, code) == REJECTED
    assert login(client, acct, "0000-0000") == REJECTED
    assert login(client, acct, recovery[4])["success"] is True
    with svc.sessions() as s:
        digests = list(s.scalars(select(RecoveryCode.digest)))
    assert len(digests) == 10 and not set(recovery) & set(digests)


def test_reset_keeps_the_second_factor(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox
) -> None:
    acct = make_account()
    key, _ = enable(client, clock, session_headers(client, acct))
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    acct.password = "a brand new passphrase"
    missing = login(client, acct)
    assert missing["success"] is False and missing["error"].startswith(REQUIRED)
    clock.advance(30)
    assert login(client, acct, token(clock, key))["success"] is True


def test_create_key_rules_and_clear(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct = make_account()
    headers = session_headers(client, acct)
    # set-key without create-key, with a key that is not the pending one, with a bad token.
    assert (
        client.post(
            f"{MFA}/set-key", json={"key": "A" * 32, "totpToken": "123456"}, headers=headers
        ).json()["success"]
        is False
    )
    first = client.post(f"{MFA}/create-key", headers=headers).json()
    second = client.post(f"{MFA}/create-key", headers=headers).json()
    assert first["key"] != second["key"]
    stale = {"key": first["key"], "totpToken": token(clock, first["key"])}
    assert client.post(f"{MFA}/set-key", json=stale, headers=headers).json()["success"] is False
    bad = {"key": second["key"], "totpToken": "12345x"}
    assert client.post(f"{MFA}/set-key", json=bad, headers=headers).json() == REJECTED
    good = {"key": second["key"], "totpToken": token(clock, second["key"])}
    assert client.post(f"{MFA}/set-key", json=good, headers=headers).json()["success"] is True
    key = second["key"]
    # With MFA configured, no new key (a stolen session cannot swap the factor).
    again = client.post(f"{MFA}/create-key", headers=headers).json()
    assert again["success"] is False and "already" in again["error"]

    assert client.post(f"{MFA}/clear", json={"totpToken": "000000"}, headers=headers).json() == (
        REJECTED
    )
    clock.advance(30)
    clear = client.post(f"{MFA}/clear", json={"totpToken": token(clock, key)}, headers=headers)
    assert clear.json() == {"success": True}
    assert client.get("/v1/api/user", headers=headers).json()["mfaConfigured"] is False
    assert login(client, acct)["success"] is True
    assert (
        client.post(f"{MFA}/clear", json={"totpToken": "000000"}, headers=headers).json()["success"]
        is False
    )


def test_operations_need_authentication_and_a_body(client: TestClient, make_account: Any) -> None:
    assert client.post(f"{MFA}/create-key").status_code == 401
    assert client.post(f"{MFA}/set-key", json={"key": "x", "totpToken": "1"}).status_code == 401
    assert client.post(f"{MFA}/clear", json={"totpToken": "1"}).status_code == 401
    headers = session_headers(client, make_account())
    assert client.post(f"{MFA}/set-key", json={"key": "x"}, headers=headers).status_code == 400
    assert client.post(f"{MFA}/clear", json={"totpToken": 1}, headers=headers).status_code == 400


def test_openapi_matches_the_edge_impulse_operations(client: TestClient) -> None:
    served, spec = client.get("/v1/openapi.json").json(), load_spec()
    for path in ("create-key", "set-key", "clear"):
        ours = served["paths"][f"/api/user/mfa/totp/{path}"]["post"]
        theirs = spec["paths"][f"/api/user/mfa/totp/{path}"]["post"]
        assert ours["operationId"] == theirs["operationId"]
        if "requestBody" in theirs:
            t_schema = theirs["requestBody"]["content"]["application/json"]["schema"]
            o_schema = ours["requestBody"]["content"]["application/json"]["schema"]
            assert schema_fields(served, o_schema) == schema_fields(spec, t_schema)
        t_resp = theirs["responses"]["200"]["content"]["application/json"]["schema"]
        o_resp = ours["responses"]["200"]["content"]["application/json"]["schema"]
        assert o_resp["$ref"].rsplit("/", 1)[1] == t_resp["$ref"].rsplit("/", 1)[1]
        assert schema_fields(served, o_resp) == schema_fields(spec, t_resp)
