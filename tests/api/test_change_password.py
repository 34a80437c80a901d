"""changePasswordCurrentUser: current password checked, every older session revoked, the
caller handed a fresh one (x-jwt-token header and jwt cookie), the notice mailed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account, Mailbox
from tests.helpers.api import login

PATH = "/v1/api/user/change-password"
NEW = "amber kettle on the moor"


def change(client: TestClient, token: str, current: str, new: str) -> Any:
    return client.post(
        PATH, json={"currentPassword": current, "newPassword": new}, headers={"x-jwt-token": token}
    )


def test_wrong_current_password_is_the_login_message(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = change(client, token, "not my password", NEW)
    assert resp.status_code == 200
    assert resp.json() == {"success": False, "error": "Invalid username or password"}
    assert "x-jwt-token" not in resp.headers
    # Nothing changed: the old password and the session still work.
    assert login(client, acct.username, acct.password)["success"] is True
    assert client.get("/v1/api/user", headers={"x-jwt-token": token}).status_code == 200


def test_success_revokes_old_sessions_and_keeps_the_caller(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    caller = login(client, acct.username, acct.password)["token"]
    other = login(client, acct.email, acct.password)["token"]
    resp = change(client, caller, acct.password, NEW)
    assert resp.status_code == 200
    assert resp.json() == {"success": True}
    fresh = resp.headers["x-jwt-token"]
    assert resp.cookies.get("jwt") == fresh
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    # Older sessions, the caller's own included, are refused; the fresh one works.
    for stale in (caller, other):
        r = client.get("/v1/api/user", headers={"x-jwt-token": stale})
        assert r.status_code == 401
        assert r.json() == {"success": False, "error": "Not authenticated"}
    client.cookies.clear()
    me = client.get("/v1/api/user", headers={"x-jwt-token": fresh})
    assert me.status_code == 200 and me.json()["email"] == acct.email
    # The old password no longer signs in; the new one does.
    assert login(client, acct.username, acct.password)["success"] is False
    assert login(client, acct.username, NEW)["success"] is True
    mailbox.run_workers()
    assert "Your Relatch password was changed" in [
        str(m["Subject"]) for m in mailbox.to(acct.email)
    ]


def test_fresh_cookie_alone_authenticates(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = change(client, token, acct.password, NEW)
    assert resp.json() == {"success": True}
    # The TestClient keeps the Set-Cookie: a browser would be signed in with it.
    assert client.get("/v1/api/user").status_code == 200


def test_needs_a_session(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    resp = client.post(PATH, json={"currentPassword": acct.password, "newPassword": NEW})
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "error": "Not authenticated"}
    assert login(client, acct.username, acct.password)["success"] is True


def test_bad_body_is_a_400(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = client.post(PATH, json={"newPassword": NEW}, headers={"x-jwt-token": token})
    assert resp.status_code == 400
    assert resp.json()["success"] is False
