"""What an account cannot do until its address is proven (issue 11, account pre-hijacking):
create API keys, set up TOTP, consent to an OAuth client, get a token by the password grant;
and the OIDC `email_verified` claim says false. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from relatch.core import totp
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import Client
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.activation import activate
from tests.helpers.api import KEYS, session_headers
from tests.helpers.totp import MFA

ACTIVATE_FIRST = (
    "Activate your account first: enter the code from the activation mail (or ask for a new one)"
)
GATED = {"success": False, "error": ACTIVATE_FIRST}
AUTHORIZE = "/v1/oauth/authorize"
REDIRECT = "https://app.example.com/cb"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback; the public URL is what it judges.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


@pytest.fixture
def web(svc: Services) -> Iterator[TestClient]:
    from relatch.app import create_app

    app = create_app(svc=svc)
    with TestClient(app, base_url="https://relatch.test", raise_server_exceptions=False) as c:
        yield c


def new_app(svc: Services, *grants: str) -> store.NewClient:
    return store.create_client(
        svc, "App", [REDIRECT], list(grants), ["openid", "email", "profile"], public=False
    )


def password_grant(web: TestClient, app: store.NewClient, acct: Account) -> Any:
    assert app.client_secret is not None
    form = {"grant_type": "password", "username": acct.username, "password": acct.password}
    form["scope"] = "openid email"
    return web.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))


def authorize(web: TestClient, app: store.NewClient, acct: Account) -> Any:
    """The authorize page as a person uses it: sign in, then (if shown) allow."""
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st-1",
    }
    page = web.get(AUTHORIZE, params=query, follow_redirects=False)
    if 'name="password"' in page.text:
        found = CSRF_RE.search(page.text)
        assert found, page.text
        form = {"csrf_token": found.group(1), "step": "signin"}
        form |= {"username": acct.username, "password": acct.password}
        page = web.post(AUTHORIZE, params=query, data=form, follow_redirects=False)
    if 'name="decision"' in page.text:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields |= {"step": "consent", "decision": "allow"}
        page = web.post(AUTHORIZE, params=query, data=fields, follow_redirects=False)
    return page


def answer(resp: Any) -> dict[str, list[str]]:
    """The query the authorize endpoint sent back to the client."""
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    parts = urlsplit(resp.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    return parse_qs(parts.query)


def test_no_api_key_and_no_totp_before_activation(
    web: TestClient, make_account: Any, mailbox: Mailbox, clock: FakeClock
) -> None:
    acct: Account = make_account(activated=False)
    headers = session_headers(web, acct)
    assert web.post(KEYS, json={"name": "ci"}, headers=headers).json() == GATED
    assert web.post(f"{MFA}/create-key", headers=headers).json() == GATED
    body = {"key": "A" * 32, "totpToken": "123456"}
    assert web.post(f"{MFA}/set-key", json=body, headers=headers).json() == GATED
    # Reading itself and its (empty) lists still works.
    assert web.get(KEYS, headers=headers).json() == {"success": True, "apiKeys": []}
    assert web.get("/v1/api/user", headers=headers).json()["mfaConfigured"] is False
    # Sudo mode still comes first: a stale session hears that, not the activation rule.
    clock.advance(3600)
    assert web.post(KEYS, json={}, headers=headers).status_code == 401

    headers = session_headers(web, acct)
    assert activate(web, mailbox, acct.email, headers) == {"success": True}
    made = web.post(KEYS, json={"name": "ci"}, headers=headers).json()
    assert made["success"] is True and made["apiKey"]
    key = web.post(f"{MFA}/create-key", headers=headers).json()["key"]
    now = int(clock.now.timestamp())
    body = {"key": key, "totpToken": totp.token_at(key, now)}
    assert web.post(f"{MFA}/set-key", json=body, headers=headers).json()["success"] is True


def test_no_oauth_consent_and_no_password_grant_before_activation(
    web: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    app = new_app(svc, "authorization_code", "password")
    acct: Account = make_account(activated=False)

    refused = password_grant(web, app, acct)
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": ACTIVATE_FIRST}
    # A wrong password still hears the one usual answer (nothing said about activation).
    wrong = password_grant(web, app, Account(acct.id, acct.email, acct.username, "nope nope"))
    assert wrong.json()["error_description"] == "Invalid username or password"

    denied = answer(authorize(web, app, acct))
    assert denied["error"] == ["access_denied"] and denied["state"] == ["st-1"]
    assert denied["error_description"] == [ACTIVATE_FIRST]
    # Nothing was remembered or issued.
    assert not store.has_consent(svc, acct.id, app.client_id, "openid")

    assert activate(web, mailbox, acct.email, session_headers(web, acct)) == {"success": True}
    assert "code" in answer(authorize(web, app, acct))
    assert password_grant(web, app, acct).status_code == 200


def test_remembered_consent_and_old_codes_give_nothing_before_activation(
    web: TestClient, make_account: Any, svc: Services
) -> None:
    """Consent and codes from before this rule (planted in storage): no code, no token."""
    app = new_app(svc, "authorization_code")
    acct: Account = make_account(activated=False)
    store.remember_consent(svc, acct.id, app.client_id, "openid email")
    assert answer(authorize(web, app, acct))["error"] == ["access_denied"]

    client = store.load_client(svc, app.client_id)
    assert isinstance(client, Client)
    user = store.user_by_id(svc, acct.id)
    assert user is not None
    store.save_code(svc, "planted-code", client, user, redirect_uri=REDIRECT, scope="openid",
                    auth_time=0)  # fmt: skip
    assert app.client_secret is not None
    form = {"grant_type": "authorization_code", "code": "planted-code", "redirect_uri": REDIRECT}
    resp = web.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_grant")


def test_email_verified_is_false_until_activation(
    web: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    """A token of an unactivated account (planted: from before this rule) reads
    email_verified false; the same token reads true once the code proved the address."""
    app = new_app(svc, "authorization_code")
    acct: Account = make_account(activated=False)
    client = store.load_client(svc, app.client_id)
    user = store.user_by_id(svc, acct.id)
    assert client is not None and user is not None
    token = {"access_token": "rlat_planted", "expires_in": 3600, "scope": "openid email"}
    store.save_token(svc, token, client, user, "authorization_code")
    bearer = {"Authorization": "Bearer rlat_planted"}

    info = web.get("/v1/oauth/userinfo", headers=bearer).json()
    assert info["email"] == acct.email and info["email_verified"] is False
    assert activate(web, mailbox, acct.email, session_headers(web, acct)) == {"success": True}
    assert web.get("/v1/oauth/userinfo", headers=bearer).json()["email_verified"] is True
    # And the ID token of a code flow, now that consent is possible.
    code = answer(authorize(web, app, acct))["code"][0]
    assert app.client_secret is not None
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    resp = web.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    assert resp.status_code == 200, resp.text
    payload = resp.json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["email_verified"] is True
