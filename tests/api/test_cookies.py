"""Cookies behind a TLS-terminating proxy: `relatch serve` sees plain http (proxy headers are
not trusted for the scheme), but a deployment whose RELATCH_PUBLIC_URL is https must still
mark every cookie Secure, or a network attacker reads it from one plain-http request."""

from __future__ import annotations

import re
from http.cookiejar import Cookie, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.request import Request

import httpx
import pytest
from fastapi.testclient import TestClient

from relatch.auth import cookies
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from tests.conftest import Account, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.api import login


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def set_cookies(resp: httpx.Response, name: str) -> list[str]:
    found = [h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found


def test_session_cookie_is_secure(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": acct.password, "newPassword": "amber kettle on the moor"},
        headers={"x-jwt-token": token},
    )
    assert resp.json() == {"success": True}
    assert all("Secure" in c for c in set_cookies(resp, "jwt"))


def test_page_cookies_are_secure(client: TestClient) -> None:
    page = client.get("/reset-password")
    assert all("Secure" in c for c in set_cookies(page, "relatch_csrf"))
    carried = client.get("/reset-password?token=1.not-a-live-token", follow_redirects=False)
    assert carried.status_code == 303
    assert all("Secure" in c for c in set_cookies(carried, "relatch_reset_code"))


# Every cookie the app can set, as narrow as it may be: (Path, SameSite, Max-Age or None).
# HttpOnly on all of them (XSS: no page script reads any; the CSRF token a form needs is
# rendered into the form, not read from its cookie).
EXPECTED: dict[str, tuple[str, str, int | None]] = {
    "jwt": ("/", "lax", None),  # every API route reads the session; Max-Age: the session's
    "relatch_csrf": ("/", "strict", None),  # every page renders a form; dies with the browser
    "relatch_reset_code": ("/reset-password", "lax", 300),
    "relatch_reset_sent": ("/reset-password", "lax", 900),
    "relatch_oauth_signin": ("/v1/oauth", "lax", 8 * 3600),
    "relatch_device": ("/", "lax", None),  # Max-Age: RELATCH_KNOWN_CLIENT_DAYS
}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
REDIRECT = "https://app.example.com/cb"


class BehindTlsProxy(DefaultCookiePolicy):
    """The browser talks https to the TLS-terminating proxy, so it sends Secure cookies back,
    while the app behind it sees plain http."""

    def return_ok_secure(self, cookie: Cookie, request: Request) -> bool:
        return True


def attributes(header: str) -> tuple[str, dict[str, str]]:
    first, *rest = header.split(";")
    attrs = {}
    for item in rest:
        key, _, value = item.strip().partition("=")
        attrs[key.lower()] = value
    return first.partition("=")[0], attrs


def csrf(page: httpx.Response) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


def test_every_cookie_the_app_sets_follows_the_table(
    client: TestClient, svc: Services, make_account: Any, mailbox: Mailbox
) -> None:
    """Drive every flow that sets a cookie, over plain http behind an https public URL."""
    seen: list[str] = []
    client.event_hooks = {"response": [lambda r: seen.extend(r.headers.get_list("set-cookie"))]}
    client.cookies.jar.set_policy(BehindTlsProxy())
    acct: Account = make_account()

    # The OAuth sign-in page: the sign-in cookie and the device cookie.
    app = store.create_client(
        svc, "App", [REDIRECT], ["authorization_code"], ["openid", "email"], public=False
    )
    query = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT}
    query |= {"scope": "openid", "state": "s", "code_challenge": "c" * 43}
    query |= {"code_challenge_method": "S256"}
    page = client.get("/v1/oauth/authorize", params=query)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    fields |= {"step": "signin", "username": acct.username, "password": acct.password}
    signed = client.post("/v1/oauth/authorize", params=query, data=fields, follow_redirects=False)
    assert signed.status_code == 200 and 'name="decision"' in signed.text, signed.text

    # The renewed session of a password change.
    token = login(client, acct.username, acct.password)["token"]
    changed = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": acct.password, "newPassword": "amber kettle on the moor"},
        headers={"x-jwt-token": token},
    )
    assert changed.json() == {"success": True}

    # The reset page: CSRF nonce, the "code sent" notice, the link's carried token (set,
    # then cleared once used) and the device cookie.
    page = client.get("/reset-password")
    form = {"csrf_token": csrf(page), "email": acct.email}
    assert client.post("/reset-password/ask", data=form, follow_redirects=False).is_redirect
    first = client.get(mailbox.last_link(acct.email), follow_redirects=False)
    page = client.get(first.headers["location"])
    new = "quiet lantern by the weir"
    form = {"csrf_token": csrf(page), "newPassword": new, "newPasswordRepeat": new}
    done = client.post("/reset-password/new", data=form, follow_redirects=False)
    assert done.headers["location"] == "/reset-password/done", done.text

    settings = svc.settings
    lifetimes = {"jwt": settings.jwt_ttl, "relatch_device": settings.known_client_days * 86400}
    found = {}
    for header in seen:
        name, attrs = attributes(header)
        assert name in EXPECTED, f"a cookie missing from the table: {header}"
        path, samesite, max_age = EXPECTED[name]
        found[name] = header
        # XSS: no script injected into a page can read it.
        assert "httponly" in attrs, header
        # CSRF: never sent on a cross-site POST (Strict: not even on a cross-site link).
        assert attrs.get("samesite") == samesite, header
        # Leak to pages that have no use for it: sent only under the path that reads it.
        assert attrs.get("path") == path, header
        # Theft over plain http: the public URL is https, though this request was http.
        assert "secure" in attrs, header
        # A stolen or forgotten browser: it lives no longer than its flow (0: a deletion).
        longest = max_age if max_age is not None else lifetimes.get(name)
        if longest is None:
            assert "max-age" not in attrs, header  # ends with the browser session
        else:
            assert 0 <= int(attrs["max-age"]) <= longest, header
    assert set(found) == set(EXPECTED) == {c.name for c in cookies.ALL}
    deleted = [h for h in seen if h.startswith("relatch_reset_code=") and "Max-Age=0" in h]
    assert deleted, "the used link's token cookie is cleared"
