"""Cross-site request forgery through the `jwt` cookie (issue 8, section 4).

A cross-site HTML form can POST `text/plain`, `application/x-www-form-urlencoded` or
`multipart/form-data` (or nothing) and the browser attaches the `jwt` cookie. With the
cookie as the credential, a state-changing operation needs `Content-Type: application/json`
(which a cross-site page cannot send without a CORS preflight); header credentials cannot
be forged cross-site and keep working without any body, as the official clients send them.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.services.context import Services
from relatch.storage.models_auth import ApiKey, TotpFactor
from tests.conftest import Account
from tests.helpers.api import session_headers

KEYS = "/v1/api/user/apikeys"
CREATE_TOTP = "/v1/api/user/mfa/totp/create-key"

# What a cross-site form (or a no-cors fetch) can send without a preflight.
FORGEABLE: list[tuple[str, dict[str, str], bytes]] = [
    ("empty text/plain", {"content-type": "text/plain"}, b""),
    ("text/plain JSON", {"content-type": "text/plain"}, b'{"name": "csrf"}'),
    ("form", {"content-type": "application/x-www-form-urlencoded"}, b"name=csrf"),
    ("multipart", {"content-type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
    ("no content type", {}, b""),
]


def count(svc: Services, model: Any, user_id: int) -> int:
    with svc.sessions() as s:
        return int(
            s.scalar(select(func.count()).select_from(model).filter_by(user_id=user_id)) or 0
        )


def jwt_of(headers: dict[str, str]) -> str:
    return headers["x-jwt-token"]


@pytest.mark.parametrize("path", [KEYS, CREATE_TOTP])
@pytest.mark.parametrize("cookie", ["named", "bare"])
def test_cookie_without_json_changes_nothing(
    client: TestClient, svc: Services, make_account: Any, path: str, cookie: str
) -> None:
    acct: Account = make_account()
    token = jwt_of(session_headers(client, acct))
    jar = f"jwt={token}" if cookie == "named" else token
    model = ApiKey if path == KEYS else TotpFactor
    for what, headers, body in FORGEABLE:
        resp = client.post(path, content=body, headers={"cookie": jar, **headers})
        assert resp.status_code == 401, (what, resp.text)
        assert resp.json()["success"] is False and "application/json" in resp.json()["error"]
        assert count(svc, model, acct.id) == 0, what
    # The owner's own page sends JSON: it works with the same cookie.
    sent = {"name": "mine"} if path == KEYS else {}
    ok = client.post(path, json=sent, headers={"cookie": jar})
    assert ok.status_code == 200 and ok.json()["success"] is True, ok.text
    assert count(svc, model, acct.id) == 1
    # Reading stays as it was: a GET with the cookie alone.
    assert client.get("/v1/api/user", headers={"cookie": jar}).status_code == 200


def test_every_state_change_with_the_cookie_needs_json(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key_id = client.post(KEYS, json={}, headers=headers).json()["id"]
    cookie = {"cookie": f"jwt={jwt_of(headers)}"}
    form = {"content-type": "application/x-www-form-urlencoded", **cookie}
    revoke = client.delete(f"{KEYS}/{key_id}", headers=form)
    assert revoke.status_code == 401, revoke.text
    assert client.get(KEYS, headers=headers).json()["apiKeys"]  # still there
    body = b'{"currentPassword": "correct horse battery", "newPassword": "csrf was here"}'
    change = client.post(
        "/v1/api/user/change-password",
        content=body,
        headers={**cookie, "content-type": "text/plain"},
    )
    assert change.status_code == 401, change.text
    assert "x-jwt-token" not in change.headers
    login = {"username": acct.username, "password": acct.password}
    assert client.post("/v1/api-login", json=login).json()["success"] is True
    # With JSON (a parameter on the media type is fine), the owner revokes the key.
    done = client.delete(
        f"{KEYS}/{key_id}", headers={**cookie, "content-type": "application/json; charset=utf-8"}
    )
    assert done.status_code == 200 and done.json() == {"success": True}, done.text


@pytest.mark.parametrize("path", [KEYS, CREATE_TOTP])
def test_header_credentials_need_no_body(
    client: TestClient, svc: Services, make_account: Any, path: str
) -> None:
    # The official Python client sends bodiless operations (create-key) with no
    # Content-Type at all and the JWT in x-jwt-token: unchanged.
    acct: Account = make_account()
    headers = session_headers(client, acct)
    client.cookies.clear()
    for extra in ({}, {"content-type": "text/plain"}):
        resp = client.post(path, headers={**headers, **extra})
        assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    # A header credential beside the cookie is the credential used: no JSON needed either.
    both = {**headers, "cookie": f"jwt={jwt_of(headers)}"}
    assert client.post(path, headers=both).json()["success"] is True


def test_api_key_without_body_is_judged_as_an_api_key(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key = client.post(KEYS, json={}, headers=headers).json()["apiKey"]
    key_id = client.post(KEYS, json={}, headers=headers).json()["id"]
    client.cookies.clear()
    # An API key is never refused for its Content-Type (it gets the usual sudo-mode 401 on
    # credential management, whatever the body); listing works bodiless.
    assert client.get(KEYS, headers={"x-api-key": key}).json()["success"] is True
    resp = client.delete(f"{KEYS}/{key_id}", headers={"x-api-key": key})
    assert resp.status_code == 401 and "application/json" not in resp.json()["error"]
