""" "This was not me": the link in the password-changed notice, its page, the confirmation
(every session revoked, the password disabled, a fresh code mailed), single use, 7 days."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import login, post
from tests.helpers.not_me import NEW, change_password, notice_link, open_page, token_of

WEEK = 7 * 24 * 3600


def test_whole_not_me_flow(client: TestClient, mailbox: Mailbox, make_account: Any) -> None:
    acct: Account = make_account()
    session = change_password(client, acct)
    path = notice_link(mailbox, acct.email)
    page, csrf = open_page(client, path)
    assert "It was not me" in page.text
    # Opening the page changes nothing (mail scanners fetch links).
    assert client.get("/v1/api/user", headers={"x-jwt-token": session}).status_code == 200
    done = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf})
    assert done.status_code == 200
    assert "Your account is secured" in done.text
    # Every session revoked; the password set by the change no longer signs in.
    assert client.get("/v1/api/user", headers={"x-jwt-token": session}).status_code == 401
    assert login(client, acct.username, NEW) == {
        "success": False,
        "error": "Invalid username or password",
    }
    # A fresh reset code went to the owner's address; it sets a new password.
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "owner is back in"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    assert login(client, acct.username, "owner is back in")["success"] is True


def test_link_is_single_use(client: TestClient, mailbox: Mailbox, make_account: Any) -> None:
    acct: Account = make_account()
    change_password(client, acct)
    path = notice_link(mailbox, acct.email)
    _, csrf = open_page(client, path)
    first = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf})
    assert first.status_code == 200
    again = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf})
    assert again.status_code == 400
    assert "invalid, has expired or was already used" in again.text
    assert client.get(path).status_code == 400


def test_link_valid_for_seven_days(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    acct: Account = make_account()
    change_password(client, acct)
    path = notice_link(mailbox, acct.email)
    clock.advance(WEEK - 1)
    _, csrf = open_page(client, path)
    clock.advance(1)
    assert client.get(path).status_code == 400
    late = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf})
    assert late.status_code == 400
    # Nothing was revoked: the new password still signs in.
    assert login(client, acct.username, NEW)["success"] is True


def test_confirmation_needs_the_csrf_field(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    session = change_password(client, acct)
    path = notice_link(mailbox, acct.email)
    open_page(client, path)
    for bad in ({}, {"csrf_token": "0" * 64}):
        resp = client.post("/not-me", data={"token": token_of(path), **bad})
        assert resp.status_code == 403
        assert "This form has expired" in resp.text
    assert client.get("/v1/api/user", headers={"x-jwt-token": session}).status_code == 200


def test_forged_and_malformed_tokens_are_one_answer(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    change_password(client, acct)
    token = token_of(notice_link(mailbox, acct.email))
    link_id, secret = token.split(".", 1)
    forged = f"{link_id}.{'A' * len(secret)}"
    for bad in (forged, f"999999.{secret}", "nonsense", "", "1." + "x" * 500):
        resp = client.get("/not-me", params={"token": bad})
        assert resp.status_code == 400
        assert "This link cannot be used" in resp.text
    assert client.get("/not-me").status_code == 400


def test_reset_notice_carries_a_link_too(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    post(client, "api-user-request-reset-password", {"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": NEW}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    path = notice_link(mailbox, acct.email)
    open_page(client, path)


def test_confirmation_revokes_api_keys_too(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """Persistence after takeover: whoever held the account could mint an API key with the
    stolen session; "this was not me" must end it with every other session and token."""
    acct: Account = make_account()
    session = login(client, acct.username, acct.password)["token"]
    minted = client.post(
        "/v1/api/user/apikeys", json={"name": "x"}, headers={"x-jwt-token": session}
    )
    key = minted.json()["apiKey"]
    assert client.get("/v1/api/user", headers={"x-api-key": key}).status_code == 200
    change_password(client, acct)
    path = notice_link(mailbox, acct.email)
    _, csrf = open_page(client, path)
    assert (
        client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf}).status_code
        == 200
    )
    assert client.get("/v1/api/user", headers={"x-api-key": key}).status_code == 401
