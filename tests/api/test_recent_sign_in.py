"""Sudo mode: API-key and TOTP changes need a recent sign-in (a session JWT whose `iat` is
within RELATCH_REAUTH_SECONDS); an old JWT, an API key or an OAuth bearer token is refused
with 401. On SQLite and PostgreSQL, time moved by the FakeClock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from relatch.app import build, create_app
from relatch.core import totp
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.activation import vouch
from tests.helpers.recent_sign_in import (
    KEYS,
    MFA,
    REAUTH,
    Person,
    bearer_token,
    enable_totp,
    jwt,
    sign_in,
)

NOT_AUTHENTICATED = {"success": False, "error": "Not authenticated"}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback: an https issuer for the bearer tokens.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


@pytest.fixture
def person(svc: Services, client: TestClient, clock: FakeClock, make_account: Any) -> Person:
    acct = make_account()
    fresh = Person(acct, "", "", "")
    fresh.jwt = sign_in(client, clock, fresh)
    made = client.post(KEYS, json={"name": "ci"}, headers=jwt(fresh.jwt))
    assert made.json()["success"] is True, made.text
    fresh.api_key = made.json()["apiKey"]
    fresh.bearer = bearer_token(svc, client, acct)
    return fresh


# Each guarded operation: `prepare` (with the person's fresh JWT) sets up what it needs;
# `call` sends it with the given headers and returns the response.
Prepare = Callable[[TestClient, FakeClock, Person], None]
Call = Callable[[TestClient, FakeClock, Person, dict[str, str]], httpx.Response]


@dataclass(frozen=True)
class Operation:
    name: str
    prepare: Prepare
    call: Call


def _nothing(client: TestClient, clock: FakeClock, person: Person) -> None:
    return None


def _pending_key(client: TestClient, clock: FakeClock, person: Person) -> None:
    made = client.post(f"{MFA}/create-key", headers=jwt(person.jwt)).json()
    assert made["success"] is True, made
    person.state["pending"] = made["key"]


def _enabled(client: TestClient, clock: FakeClock, person: Person) -> None:
    person.state["recovery"] = enable_totp(client, clock, person)


def _second_key(client: TestClient, clock: FakeClock, person: Person) -> None:
    made = client.post(KEYS, json={"name": "to revoke"}, headers=jwt(person.jwt)).json()
    assert made["success"] is True, made
    person.state["key_id"] = made["id"]


def _create_totp_key(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    return client.post(f"{MFA}/create-key", headers=headers)


def _set_totp_key(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    key = person.state["pending"]
    body = {"key": key, "totpToken": totp.token_at(key, int(clock.now.timestamp()))}
    return client.post(f"{MFA}/set-key", json=body, headers=headers)


def _clear_totp(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    body = {"totpToken": person.state["recovery"][0]}
    return client.post(f"{MFA}/clear", json=body, headers=headers)


def _create_api_key(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    return client.post(KEYS, json={"name": "new"}, headers=headers)


def _revoke_api_key(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    return client.delete(f"{KEYS}/{person.state['key_id']}", headers=headers)


def _change_email(
    client: TestClient, clock: FakeClock, person: Person, headers: dict[str, str]
) -> httpx.Response:
    return client.post(
        "/v1/api/user/change-email", json={"newEmail": "moved@example.org"}, headers=headers
    )


OPERATIONS = [
    Operation("totp create-key", _nothing, _create_totp_key),
    Operation("totp set-key", _pending_key, _set_totp_key),
    Operation("totp clear", _enabled, _clear_totp),
    Operation("api key create", _nothing, _create_api_key),
    Operation("api key revoke", _second_key, _revoke_api_key),
    # Moving the account's address (issue 14): reset codes go where it points.
    Operation("change email", _nothing, _change_email),
]


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_refused_without_a_recent_sign_in_then_works_after_one(
    client: TestClient, clock: FakeClock, svc: Services, person: Person, op: Operation
) -> None:
    op.prepare(client, clock, person)
    clock.advance(svc.settings.reauth_seconds + 1)
    # With the cookie, a state change is sent as JSON (CSRF: tests/api/test_cookie_csrf.py).
    as_json = {"content-type": "application/json"}
    stale = [
        ("old JWT header", jwt(person.jwt)),
        ("old JWT cookie", {"cookie": f"jwt={person.jwt}", **as_json}),
        ("old bare JWT cookie", {"cookie": person.jwt, **as_json}),  # as official clients send it
        ("API key", {"x-api-key": person.api_key}),
        ("OAuth bearer", {"authorization": f"Bearer {person.bearer}"}),
    ]
    client.cookies.clear()  # only the credential under test is sent
    for what, headers in stale:
        # Each credential is still valid for everything else...
        assert client.get("/v1/api/user", headers=headers).status_code == 200, what
        # ...but not for changing how the account signs in.
        resp = op.call(client, clock, person, headers)
        assert resp.status_code == 401, (what, resp.text)
        assert resp.json() == REAUTH, what

    fresh = sign_in(client, clock, person)
    for headers in (jwt(fresh), {"cookie": f"jwt={fresh}", **as_json}):
        resp = op.call(client, clock, person, headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["success"] is True, resp.text
        if op.name in ("totp create-key", "api key create"):
            continue  # repeatable: try the cookie too (create-key again is a new pending key)
        break


def test_window_boundary(
    client: TestClient, clock: FakeClock, svc: Services, person: Person
) -> None:
    window = svc.settings.reauth_seconds
    assert window == 900  # the documented default (README, settings.py)
    clock.advance(window)
    at = _create_api_key(client, clock, person, jwt(person.jwt))
    assert at.json()["success"] is True, at.text  # exactly the window old: still recent
    clock.advance(1)
    after = _create_api_key(client, clock, person, jwt(person.jwt))
    assert (after.status_code, after.json()) == (401, REAUTH)


def test_configurable_window(
    tmp_path: Path, db_url: str, clock: FakeClock, make_account: Any
) -> None:
    short = build(make_settings(tmp_path, db_url, reauth_seconds=120), clock=clock)
    try:
        migrate.upgrade(short.engine)
        with TestClient(create_app(svc=short), raise_server_exceptions=False) as c:
            body = {"name": "N", "username": "shortwin", "email": "short@example.com",
                    "privacyPolicy": True, "password": "correct horse battery"}  # fmt: skip
            made = c.post("/v1/api-user-create", json=body).json()
            assert made["success"] is True
            vouch(short, made["id"])  # TOTP needs a proven address (issue 11)
            login = {"username": "shortwin", "password": "correct horse battery"}
            token = c.post("/v1/api-login", json=login).json()["token"]
            clock.advance(120)
            assert c.post(f"{MFA}/create-key", headers=jwt(token)).json()["success"] is True
            clock.advance(1)
            assert c.post(f"{MFA}/create-key", headers=jwt(token)).json() == REAUTH
    finally:
        short.close()


def test_listing_keys_and_current_user_need_no_recent_sign_in(
    client: TestClient, clock: FakeClock, svc: Services, person: Person
) -> None:
    clock.advance(svc.settings.reauth_seconds + 1)
    for headers in (
        jwt(person.jwt),
        {"x-api-key": person.api_key},
        {"authorization": f"Bearer {person.bearer}"},
    ):
        assert client.get(KEYS, headers=headers).json()["success"] is True
        assert client.get("/v1/api/user", headers=headers).status_code == 200


def test_an_api_key_beside_a_fresh_jwt_is_still_an_api_key(
    client: TestClient, clock: FakeClock, person: Person
) -> None:
    # Schemes are tried in one order (x-api-key first): a key cannot borrow a JWT's freshness
    # it was not checked against, and the answer does not depend on which one is stolen.
    headers = {"x-api-key": person.api_key, **jwt(sign_in(client, clock, person))}
    resp = _create_api_key(client, clock, person, headers)
    assert (resp.status_code, resp.json()) == (401, REAUTH)


def test_bad_credentials_stay_not_authenticated(client: TestClient, person: Person) -> None:
    # Missing or invalid credentials keep the usual message; only valid-but-not-recent
    # ones are told to sign in again.
    for headers in ({}, jwt(person.jwt[:-2] + "xx"), {"x-api-key": "ei_nope"}):
        resp = _create_api_key(client, FakeClock(), person, headers)
        assert (resp.status_code, resp.json()) == (401, NOT_AUTHENTICATED)


def test_password_change_hands_out_no_newer_sign_in(
    client: TestClient, clock: FakeClock, svc: Services, person: Person
) -> None:
    # changePasswordCurrentUser checks the password but not the second factor: its renewed
    # JWT keeps the old sign-in time (issue 8; more in tests/api/test_session_only.py).
    clock.advance(svc.settings.reauth_seconds + 1)
    body = {"currentPassword": person.acct.password, "newPassword": "a whole new passphrase"}
    resp = client.post("/v1/api/user/change-password", json=body, headers=jwt(person.jwt))
    assert resp.json()["success"] is True, resp.text
    fresh = resp.headers["x-jwt-token"]
    client.cookies.clear()
    made = _create_api_key(client, clock, person, jwt(fresh))
    assert (made.status_code, made.json()) == (401, REAUTH)


def test_openapi_documents_the_recent_sign_in(client: TestClient) -> None:
    paths = client.get("/v1/openapi.json").json()["paths"]
    guarded = [
        ("/api/user/mfa/totp/create-key", "post"),
        ("/api/user/mfa/totp/set-key", "post"),
        ("/api/user/mfa/totp/clear", "post"),
        ("/api/user/apikeys", "post"),
        ("/api/user/apikeys/{keyId}", "delete"),
        ("/api/user/change-email", "post"),
        ("/api/user/change-email/confirm", "post"),
    ]
    for path, method in guarded:
        assert "recent sign-in" in paths[path][method]["responses"]["401"]["description"]
    assert (
        "recent sign-in" not in paths["/api/user/apikeys"]["get"]["responses"]["401"]["description"]
    )
