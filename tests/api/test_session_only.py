"""changePasswordCurrentUser takes a session JWT only, and the JWT it hands back carries the
sign-in time of the session that asked, never a fresher one (issue 8, section 2).

Threat: an API key or a third party's OAuth bearer token, plus the password, must not mint a
session that skips the second factor or counts as a recent sign-in ("sudo mode"). Each scheme
is tried; on SQLite and PostgreSQL, time moved by the FakeClock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from fastapi.testclient import TestClient

from relatch.core import totp
from relatch.oauth import store
from relatch.services.context import Services
from relatch.settings import Settings
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.audit import rows as audit_rows
from tests.helpers.recent_sign_in import (
    KEYS,
    MFA,
    REAUTH,
    Person,
    bearer_token,
    enable_totp,
    sign_in,
)

PATH = "/v1/api/user/change-password"
NEW = "a whole new passphrase"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback: an https issuer for the bearer tokens.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


@pytest.fixture
def person(svc: Services, client: TestClient, clock: FakeClock, make_account: Any) -> Person:
    acct = make_account()
    fresh = Person(acct, "", "", "")
    fresh.jwt = sign_in(client, clock, fresh)
    made = client.post(KEYS, json={"name": "ci"}, headers={"x-jwt-token": fresh.jwt})
    assert made.json()["success"] is True, made.text
    fresh.api_key = made.json()["apiKey"]
    fresh.bearer = bearer_token(svc, client, acct)
    return fresh


def claims(token: str) -> dict[str, Any]:
    return dict(pyjwt.decode(token, options={"verify_signature": False}))


def change(client: TestClient, person: Person, headers: dict[str, str], new: str = NEW) -> Any:
    body = {"currentPassword": person.acct.password, "newPassword": new}
    return client.post(PATH, json=body, headers=headers)


def password_unchanged(client: TestClient, person: Person) -> None:
    body = {"username": person.acct.username, "password": person.acct.password}
    answer = client.post("/v1/api-login", json=body).json()
    if person.totp_key:  # the password still matches: the second factor is asked for
        assert answer["error"].startswith("ERR_TOTP_TOKEN IS REQUIRED"), answer
    else:
        assert answer["success"] is True, answer


def test_bearer_token_and_password_mint_no_session_with_totp_on(
    client: TestClient, clock: FakeClock, person: Person
) -> None:
    # The reproduction: TOTP on; a third-party app's `openid` bearer token plus the password
    # answered 200 with x-jwt-token, and that JWT created a working API key.
    enable_totp(client, clock, person)
    client.cookies.clear()
    resp = change(client, person, {"authorization": f"Bearer {person.bearer}"})
    assert (resp.status_code, resp.json()) == (401, REAUTH)
    assert "x-jwt-token" not in resp.headers and "set-cookie" not in resp.headers
    password_unchanged(client, person)
    # The bearer token keeps the access it was granted (reading the profile), no more.
    assert client.get("/v1/api/user", headers={"authorization": f"Bearer {person.bearer}"}).json()[
        "mfaConfigured"
    ]


@pytest.mark.parametrize("scheme", ["x-api-key", "Bearer"])
def test_api_keys_and_bearer_tokens_are_refused(
    client: TestClient, clock: FakeClock, person: Person, scheme: str
) -> None:
    client.cookies.clear()
    headers = (
        {"x-api-key": person.api_key}
        if scheme == "x-api-key"
        else {"authorization": f"Bearer {person.bearer}"}
    )
    resp = change(client, person, headers)
    assert (resp.status_code, resp.json()) == (401, REAUTH)
    assert "x-jwt-token" not in resp.headers and "set-cookie" not in resp.headers
    password_unchanged(client, person)
    # A wrong current password gets the same 401: no password oracle for a key holder.
    wrong = client.post(
        PATH, json={"currentPassword": "not it at all", "newPassword": NEW}, headers=headers
    )
    assert (wrong.status_code, wrong.json()) == (401, REAUTH)


@pytest.mark.parametrize("scheme", ["x-jwt-token", "jwt cookie", "bare cookie"])
def test_a_session_jwt_changes_the_password(
    client: TestClient, clock: FakeClock, person: Person, scheme: str
) -> None:
    client.cookies.clear()
    headers = {
        "x-jwt-token": {"x-jwt-token": person.jwt},
        "jwt cookie": {"cookie": f"jwt={person.jwt}"},
        "bare cookie": {"cookie": person.jwt},  # as the official generated clients send it
    }[scheme]
    resp = change(client, person, headers)
    assert (resp.status_code, resp.json()) == (200, {"success": True}), resp.text
    fresh = resp.headers["x-jwt-token"]
    client.cookies.clear()
    assert client.get("/v1/api/user", headers={"x-jwt-token": fresh}).status_code == 200
    assert client.get("/v1/api/user", headers={"x-jwt-token": person.jwt}).status_code == 401


def test_the_new_jwt_keeps_the_sign_in_time(
    client: TestClient, clock: FakeClock, svc: Services, person: Person
) -> None:
    signed_in = claims(person.jwt)["iat"]
    clock.advance(svc.settings.reauth_seconds + 1)
    resp = change(client, person, {"x-jwt-token": person.jwt})
    assert resp.json() == {"success": True}, resp.text
    fresh = resp.headers["x-jwt-token"]
    got = claims(fresh)
    # When the person signed in, not when the password changed; and the session ends when
    # the one that asked would have: a change cannot stretch a session either.
    assert got["auth_time"] == signed_in
    assert got["exp"] == signed_in + svc.settings.jwt_ttl
    assert f"max-age={signed_in + svc.settings.jwt_ttl - got['iat']}" in (
        resp.headers["set-cookie"].lower()
    )
    client.cookies.clear()
    # Not a recent sign-in: no API key, no TOTP key with it.
    for path, body in ((KEYS, {"name": "x"}), (f"{MFA}/create-key", {})):
        made = client.post(path, json=body, headers={"x-jwt-token": fresh})
        assert (made.status_code, made.json()) == (401, REAUTH), path
    # The owner keeps the session, and a real sign-in with the new password is recent.
    assert client.get("/v1/api/user", headers={"x-jwt-token": fresh}).status_code == 200
    person.acct.password = NEW
    again = sign_in(client, clock, person)
    assert client.post(KEYS, json={}, headers={"x-jwt-token": again}).json()["success"] is True


def test_a_recent_session_stays_recent(
    client: TestClient, clock: FakeClock, person: Person
) -> None:
    # Owner side: changing the password right after signing in loses nothing.
    clock.advance(60)
    resp = change(client, person, {"x-jwt-token": person.jwt})
    fresh = resp.headers["x-jwt-token"]
    client.cookies.clear()
    made = client.post(KEYS, json={"name": "after"}, headers={"x-jwt-token": fresh})
    assert made.json()["success"] is True, made.text


def test_totp_session_change_then_no_shortcut_past_the_second_factor(
    client: TestClient, clock: FakeClock, svc: Services, person: Person
) -> None:
    # A session taken with the second factor may change the password; the new password
    # alone still does not sign in, and the renewed JWT is no newer sign-in.
    enable_totp(client, clock, person)
    assert person.totp_key
    body = {
        "username": person.acct.username,
        "password": person.acct.password,
        "totpToken": totp.token_at(person.totp_key, int(clock.now.timestamp())),
    }
    session = client.post("/v1/api-login", json=body).json()["token"]
    clock.advance(svc.settings.reauth_seconds + 1)
    resp = change(client, person, {"x-jwt-token": session})
    assert resp.json() == {"success": True}, resp.text
    client.cookies.clear()
    person.acct.password = NEW
    password_unchanged(client, person)  # i.e. the new password, and TOTP still asked for
    made = client.post(KEYS, json={}, headers={"x-jwt-token": resp.headers["x-jwt-token"]})
    assert (made.status_code, made.json()) == (401, REAUTH)


def test_password_grant_asks_for_the_second_factor_too(
    svc: Services, client: TestClient, clock: FakeClock, person: Person
) -> None:
    # The other place a password is traded for a credential: /v1/oauth/token's password
    # grant. With TOTP on it mints nothing without a valid token.
    enable_totp(client, clock, person)
    assert person.totp_key
    app = store.create_client(
        svc, "Other", ["https://other.example/cb"], ["password"], ["openid"], False
    )
    assert app.client_secret is not None
    auth = (app.client_id, app.client_secret)
    form = {
        "grant_type": "password",
        "username": person.acct.username,
        "password": person.acct.password,
    }
    start = len(audit_rows(svc))
    for extra in ({}, {"totpToken": "000000"}):
        refused = client.post("/v1/oauth/token", data={**form, **extra}, auth=auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_grant" and "access_token" not in refused.json()
    good = {"totpToken": totp.token_at(person.totp_key, int(clock.now.timestamp()))}
    granted = client.post("/v1/oauth/token", data={**form, **good}, auth=auth)
    assert granted.status_code == 200 and granted.json()["access_token"], granted.text
    # Audited with the outcome the client got, "ok" only after the second factor.
    assert [(r.event, r.outcome, r.account_id) for r in audit_rows(svc)[start:]] == [
        ("login", "totp_required", person.acct.id),
        ("login", "totp_rejected", person.acct.id),
        ("login", "ok", person.acct.id),
    ]
