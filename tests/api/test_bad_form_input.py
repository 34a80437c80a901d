"""Text no field can hold, sent through the page forms and the OAuth sign-in form: the form
again (never a 500, never an ERROR log line), the text never echoed, nothing stored; on
SQLite and PostgreSQL (PostgreSQL refuses NUL in text, which SQLite stores)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from relatch.storage.models import ResetRequest
from tests import conftest

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
FORM = {"content-type": "application/x-www-form-urlencoded"}
REDIRECT = "https://app.example/cb"
# Each once a 500 or a way into a mail or a terminal (issue 8).
HOSTILE = ["user\x000001", "user0001\r\nBcc: x@example.com", "user\x1b[31m0001", "\x85\u2028"]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback; the public URL is what it judges.
    return conftest.test_settings(tmp_path, db_url, public_url="https://relatch.test")


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def csrf(client: TestClient, path: str, **params: str) -> tuple[str, str]:
    """(form token, cookie header) of a page: its cookie is Secure, the client is on http."""
    page = client.get(path, params=params)
    found = CSRF_RE.search(page.text)
    assert found, page.text[:300]
    return found.group(1), f"relatch_csrf={page.cookies['relatch_csrf']}"


def post_form(client: TestClient, path: str, fields: dict[str, str], cookie: str, **q: str) -> Any:
    body = urlencode(fields, errors="surrogatepass")
    return client.post(
        path, params=q, content=body, headers={**FORM, "cookie": cookie}, follow_redirects=False
    )


def reset_requests(svc: Services) -> int:
    with svc.sessions() as s:
        return s.scalar(select(func.count()).select_from(ResetRequest)) or 0


@pytest.mark.parametrize("junk", HOSTILE)
def test_oauth_sign_in_form(
    svc: Services,
    client: TestClient,
    make_account: Any,
    caplog: pytest.LogCaptureFixture,
    junk: str,
) -> None:
    """NUL in the username was a 500 on PostgreSQL (the look-up sent it to the database)."""
    owner = make_account()
    app = store.create_client(svc, "App", [REDIRECT], ["authorization_code"], ["openid"], False)
    query = {
        "client_id": app.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid",
    }
    token, cookie = csrf(client, "/v1/oauth/authorize", **query)
    for username, password in ((junk, owner.password), (owner.username, junk)):
        fields = {"step": "signin", "username": username, "password": password}
        resp = post_form(
            client, "/v1/oauth/authorize", {**fields, "csrf_token": token}, cookie, **query
        )
        assert resp.status_code == 200, resp.text[:300]
        assert "Invalid username or password" in resp.text
        assert password not in resp.text  # (the page shows the username typed, escaped)
        no_errors_logged(caplog)
    # The owner still signs in: the consent page follows.
    fields = {"step": "signin", "username": owner.username, "password": owner.password}
    resp = post_form(
        client, "/v1/oauth/authorize", {**fields, "csrf_token": token}, cookie, **query
    )
    assert resp.status_code == 200 and 'name="decision"' in resp.text, resp.text[:300]


@pytest.mark.parametrize("junk", ["a\x00@example.com", "ada@example.com\r\nBcc: x@example.com"])
def test_reset_page_address(
    svc: Services, client: TestClient, caplog: pytest.LogCaptureFixture, junk: str
) -> None:
    token, cookie = csrf(client, "/reset-password")
    resp = post_form(client, "/reset-password/ask", {"csrf_token": token, "email": junk}, cookie)
    assert resp.status_code == 400
    assert 'id="email-error"' in resp.text
    assert junk not in resp.text
    assert reset_requests(svc) == 0
    no_errors_logged(caplog)


@pytest.mark.parametrize(
    ("field", "junk"),
    [("email", "a\x00@example.com"), ("code", "ABCD\x00EFGH"), ("newPassword", "fine\x00words")],
)
def test_reset_page_new_password(
    svc: Services,
    client: TestClient,
    make_account: Any,
    caplog: pytest.LogCaptureFixture,
    field: str,
    junk: str,
) -> None:
    owner = make_account()
    token, cookie = csrf(client, "/reset-password", email=owner.email)
    fields = {
        "csrf_token": token,
        "email": owner.email,
        "code": "ABCD-EFGH",
        "newPassword": "a brand new passphrase",
        "newPasswordRepeat": "a brand new passphrase",
    }
    fields[field] = junk
    if field == "newPassword":
        fields["newPasswordRepeat"] = junk
    resp = post_form(client, "/reset-password/new", fields, cookie)
    assert resp.status_code == 400
    assert f'id="{field}-error"' in resp.text
    assert junk not in resp.text
    no_errors_logged(caplog)


@pytest.mark.parametrize("path", ["/not-me", "/change-email/undo"])
def test_link_form_token(client: TestClient, caplog: pytest.LogCaptureFixture, path: str) -> None:
    token, cookie = csrf(client, "/reset-password")
    resp = post_form(client, path, {"csrf_token": token, "token": "1.\x00\ud800"}, cookie)
    assert resp.status_code == 400
    no_errors_logged(caplog)
