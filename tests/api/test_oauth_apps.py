"""The apps holding OAuth grants (issue 14): list them, revoke one (every access and
refresh token and the consent go). Another account's grants are neither seen nor revoked;
an API key or an app's own bearer token cannot act. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.core.errors import OAuthAppNotFound
from relatch.services.audit import outcome_of
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_clients
from relatch.storage import oauth_repo as store
from tests.conftest import Account, FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.api import create_key
from tests.helpers.audit import rows as audit_rows

APPS = "/v1/api/user/oauth-apps"
NOT_FOUND = {"success": False, "error": "No grant for this app"}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # https: Authlib refuses plain http for the bearer tokens.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def new_app(svc: Services, name: str) -> store.NewClient:
    return store.create_client(
        svc, name, ["https://app.example/cb"], ["password", "refresh_token"], ["openid"], False
    )


def sign_in(client: TestClient, acct: Account) -> dict[str, str]:
    body = {"username": acct.username, "password": acct.password}
    return {"x-jwt-token": client.post("/v1/api-login", json=body).json()["token"]}


def oauth_tokens(client: TestClient, app: store.NewClient, acct: Account) -> dict[str, Any]:
    assert app.client_secret is not None
    form = {"grant_type": "password", "username": acct.username, "password": acct.password}
    form["scope"] = "openid"
    resp = client.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def refresh(client: TestClient, app: store.NewClient, token: str) -> int:
    assert app.client_secret is not None
    form = {"grant_type": "refresh_token", "refresh_token": token}
    resp = client.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    return resp.status_code


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_list_then_revoke_an_app(
    client: TestClient, svc: Services, clock: FakeClock, make_account: Any
) -> None:
    acct = make_account()
    me = sign_in(client, acct)
    first, second = new_app(svc, "First app"), new_app(svc, "Second app")
    oauth_clients.remember_consent(svc, acct.id, first.client_id, "openid email")
    clock.advance(60)
    tokens = [oauth_tokens(client, first, acct) for _ in range(2)]
    kept = oauth_tokens(client, second, acct)
    listed = client.get(APPS, headers=me).json()
    assert listed == {
        "success": True,
        "apps": [
            {
                "clientId": first.client_id,
                "name": "First app",
                "scopes": ["email", "openid"],
                "granted": "2026-01-01T12:00:00.000Z",
            },
            {
                "clientId": second.client_id,
                "name": "Second app",
                "scopes": ["openid"],
                "granted": "2026-01-01T12:01:00.000Z",
            },
        ],
    }
    for t in tokens:
        assert client.get("/v1/api/user", headers=bearer(t["access_token"])).status_code == 200
    resp = client.delete(f"{APPS}/{first.client_id}", headers=me)
    assert resp.json() == {"success": True}
    for t in tokens:
        assert client.get("/v1/api/user", headers=bearer(t["access_token"])).status_code == 401
        assert refresh(client, first, t["refresh_token"]) != 200
    assert not oauth_clients.has_consent(svc, acct.id, first.client_id, "openid")
    assert [a["clientId"] for a in client.get(APPS, headers=me).json()["apps"]] == [
        second.client_id
    ]
    assert client.get("/v1/api/user", headers=bearer(kept["access_token"])).status_code == 200
    # Revoked twice: nothing is held any more.
    assert client.delete(f"{APPS}/{first.client_id}", headers=me).json() == NOT_FOUND
    revokes = [(r.outcome, r.account_id) for r in audit_rows(svc) if r.event == "oauth_app_revoke"]
    assert revokes == [("ok", acct.id), (outcome_of(OAuthAppNotFound()), acct.id)]


def test_another_accounts_apps_are_neither_seen_nor_revoked(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    victim, attacker = make_account(), make_account()
    app = new_app(svc, "Victim's app")
    token = oauth_tokens(client, app, victim)["access_token"]
    them = sign_in(client, attacker)
    assert client.get(APPS, headers=them).json() == {"success": True, "apps": []}
    for client_id in (app.client_id, "no-such-client"):
        assert client.delete(f"{APPS}/{client_id}", headers=them).json() == NOT_FOUND
    assert client.get("/v1/api/user", headers=bearer(token)).status_code == 200


def test_neither_an_api_key_nor_a_bearer_token_may_act(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    acct = make_account()
    app = new_app(svc, "App")
    token = oauth_tokens(client, app, acct)["access_token"]
    key = {"x-api-key": create_key(client, sign_in(client, acct))["apiKey"]}
    for creds in (key, bearer(token)):
        assert client.get(APPS, headers=creds).status_code == 401
        assert client.delete(f"{APPS}/{app.client_id}", headers=creds).status_code == 401
    assert client.get("/v1/api/user", headers=bearer(token)).status_code == 200
