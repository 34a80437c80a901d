"""A person holding every kind of credential (session JWT, API key, OAuth bearer token,
TOTP), for the recent-sign-in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from relatch.core import totp
from relatch.oauth import store
from relatch.services.context import Services
from tests.helpers.app import Account, FakeClock

KEYS = "/v1/api/user/apikeys"
MFA = "/v1/api/user/mfa/totp"
REAUTH = {
    "success": False,
    "error": "Sign in again (with your password) to change your sign-in methods",
}


@dataclass
class Person:
    """An account with every kind of credential, all taken at one moment."""

    acct: Account
    jwt: str
    api_key: str
    bearer: str
    totp_key: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


def sign_in(client: TestClient, clock: FakeClock, person: Person) -> str:
    body = {"username": person.acct.username, "password": person.acct.password}
    if person.totp_key:
        body["totpToken"] = totp.token_at(person.totp_key, int(clock.now.timestamp()))
    resp = client.post("/v1/api-login", json=body)
    assert resp.json()["success"] is True, resp.text
    return str(resp.json()["token"])


def bearer_token(svc: Services, client: TestClient, acct: Account) -> str:
    app = store.create_client(
        svc, "App", ["https://app.example/cb"], ["password"], ["openid", "email"], False
    )
    assert app.client_secret is not None
    form = {"grant_type": "password", "username": acct.username, "password": acct.password}
    resp = client.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def jwt(token: str) -> dict[str, str]:
    return {"x-jwt-token": token}


def enable_totp(client: TestClient, clock: FakeClock, person: Person) -> list[str]:
    key = client.post(f"{MFA}/create-key", headers=jwt(person.jwt)).json()["key"]
    body = {"key": key, "totpToken": totp.token_at(key, int(clock.now.timestamp()))}
    done = client.post(f"{MFA}/set-key", json=body, headers=jwt(person.jwt)).json()
    assert done["success"] is True, done
    person.totp_key = key
    clock.advance(30)  # the set-key step is spent: later tokens come from the next steps
    return list(done["recoveryCodes"])
