"""The sign-in page of the account pages (`/account/sign-in`) through the ASGI client, on
SQLite and PostgreSQL.

Owner side: the form has the contract's fields; the owner signs in, gets the `jwt` cookie
(HttpOnly, SameSite=Lax, Secure on https) and lands on the sessions page, which lists
this very session; a second factor is asked for when set; `next` under /account is kept.
Attacker side: an unknown user and a wrong password get the same page after the same
work; the failure limits of every sign-in apply (a known browser keeps its own budget); a
wrong TOTP code signs nobody in; a forged or cross-site POST is refused before any
password is checked (login CSRF); `next` never leads off this origin nor out of /account.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from relatch.app import create_app
from relatch.services.context import Services
from tests.api.test_equal_work import assert_equal_work, work
from tests.conftest import DATABASES, Account, FakeClock
from tests.helpers.api import session_headers
from tests.helpers.audit import rows
from tests.helpers.lockout import (
    PASSWORD,
    WRONG,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    limited,
    refused,
    strangers,
)
from tests.helpers.totp import enable as enable_totp
from tests.helpers.totp import token as totp_token

SIGN_IN = "/account/sign-in"
SESSIONS = "/account/sessions"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
ACTION_RE = re.compile(r'<form method="post" action="(/account/sign-in[^"]*)"')
NEXT_RE = re.compile(r'name="next" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, html[:500]
    return found.group(1)


def fill(
    client: TestClient,
    username: str,
    password: str,
    *,
    totp: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Open the form and send it, as a person does; the answer, not followed."""
    page = client.get(SIGN_IN, params=params, headers=headers)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_of(page.text), "username": username, "password": password}
    found = NEXT_RE.search(page.text)
    data["next"] = found.group(1).replace("&amp;", "&") if found else ""
    if totp is not None:
        data["totpToken"] = totp
    action = ACTION_RE.search(page.text)
    assert action
    return client.post(action.group(1), data=data, headers=headers, follow_redirects=False)


def set_cookie(resp: httpx.Response, name: str) -> str | None:
    found = [h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) <= 1
    return found[0] if found else None


def flags(header: str) -> set[str]:
    return {f.strip().lower() for f in header.split(";")[1:]}


def signed_in(resp: httpx.Response) -> bool:
    return resp.status_code == 303 and set_cookie(resp, "jwt") is not None


def page_of(resp: httpx.Response) -> str:
    """The page with what differs from one render to the next (the CSRF token) left out."""
    return CSRF_RE.sub("", resp.text)


def api_sessions(client: TestClient, token: str) -> list[dict[str, Any]]:
    resp = client.get("/v1/api/user/sessions", headers={"x-jwt-token": token})
    assert resp.status_code == 200, resp.text
    sessions: list[dict[str, Any]] = resp.json()["sessions"]
    return sessions


def test_the_form_has_the_contracts_fields(client: TestClient) -> None:
    page = client.get(SIGN_IN)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert re.search(r'<form method="post" action="/account/sign-in"', html)
    assert re.search(r'name="username" type="text"\s+autocomplete="username"', html)
    assert re.search(r'name="password" type="password"\s+autocomplete="current-password"', html)
    assert 'name="totpToken"' not in html  # asked for only once the password matched
    assert csrf_of(html) and 'name="next" value=""' in html
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert set_cookie(page, "relatch_csrf")  # the nonce the form's token is bound to


def test_the_owner_signs_in_and_sees_their_session(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    agent = {"user-agent": "Owner browser/3.0"}
    client.get(SIGN_IN, headers=agent)
    old_nonce = client.cookies["relatch_csrf"]
    resp = fill(client, acct.username, acct.password, headers=agent)
    assert resp.status_code == 303 and resp.headers["location"] == SESSIONS
    jwt = set_cookie(resp, "jwt")
    assert jwt is not None
    # The session cookie as auth/cookies.py SESSION says (plain http here: not Secure).
    assert {"httponly", "path=/", "samesite=lax"} <= flags(jwt) and "secure" not in flags(jwt)
    # The browser becomes a known device; the CSRF nonce of before the sign-in is replaced.
    assert set_cookie(resp, "relatch_device") is not None
    assert client.cookies["relatch_csrf"] != old_nonce
    page = client.get(resp.headers["location"], headers=agent)
    assert page.status_code == 200, page.text
    assert f"Signed in as {acct.username}." in page.text
    current = re.search(r"<h3[^>]*>([^<]*)<span class=\"badge\">This device", page.text)
    assert current and "Owner browser/3.0" in current.group(1)
    # The same server-side session the JSON API lists, named the current one.
    token = jwt.split(";")[0].split("=", 1)[1]
    listed = api_sessions(client, token)
    assert [(s["userAgent"], s["current"]) for s in listed] == [("Owner browser/3.0", True)]


def test_signing_in_by_address_and_to_a_page_under_account(
    client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    resp = fill(client, acct.email, acct.password, params={"next": "/account/sessions?lang=fr"})
    assert signed_in(resp) and resp.headers["location"] == "/account/sessions?lang=fr"
    # Signed in already: the form is skipped, on to `next`.
    again = client.get(SIGN_IN, params={"next": "/account/sessions"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == SESSIONS


def test_the_cookie_is_secure_when_the_public_url_is_https(
    svc: Services, make_account: Any
) -> None:
    acct: Account = make_account()
    svc.settings.public_url = "https://relatch.test"
    with TestClient(
        create_app(svc=svc), base_url="https://relatch.test", raise_server_exceptions=False
    ) as web:
        resp = fill(web, acct.username, acct.password)
    jwt = set_cookie(resp, "jwt")
    assert jwt is not None and {"secure", "httponly", "samesite=lax"} <= flags(jwt)


def test_unknown_user_and_wrong_password_get_one_answer(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    pages = {}
    for name, username in {"wrong password": acct.username, "unknown user": "nobody"}.items():
        resp = fill(client, username, "not the password")
        assert resp.status_code == 200 and set_cookie(resp, "jwt") is None
        assert "Invalid username or password" in resp.text
        assert "not the password" not in resp.text  # the password is never put back
        pages[name] = (resp.status_code, page_of(resp).replace(username, "NAME"))
    assert pages["wrong password"] == pages["unknown user"]

    # The same database work on both sides (tests/api/test_equal_work.py), so the same time.
    form = client.get(SIGN_IN).text

    def post(username: str) -> Callable[[], None]:
        def run() -> None:
            data = {"csrf_token": csrf_of(form), "username": username, "password": "wrong!!"}
            assert client.post(SIGN_IN, data=data).status_code == 200

        return run

    sides_of = {"known user": post(acct.username), "unknown user": post("nobody")}
    for run in sides_of.values():
        run()
    assert_equal_work({name: work(svc, run) for name, run in sides_of.items()})


def test_empty_or_unusable_fields_are_asked_for_again(
    client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    page = client.get(SIGN_IN).text
    for username, password, field in (
        ("", acct.password, "username"),
        (acct.username, "", "password"),
        (f"{acct.username}\x00", acct.password, "username"),
    ):
        data = {"csrf_token": csrf_of(page), "username": username, "password": password}
        resp = client.post(SIGN_IN, data=data, follow_redirects=False)
        assert resp.status_code == 400 and f'id="{field}-error"' in resp.text, resp.text
        assert set_cookie(resp, "jwt") is None


def test_a_second_factor_is_asked_for_when_set(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct: Account = make_account()
    key, recovery = enable_totp(client, clock, session_headers(client, acct))
    clock.advance(60)
    client.cookies.clear()
    first = fill(client, acct.username, acct.password)
    assert first.status_code == 200 and set_cookie(first, "jwt") is None
    assert re.search(r'name="totpToken" type="text"\s+autocomplete="one-time-code"', first.text)
    # A recovery code has letters: a numeric keypad would keep the owner from typing it.
    field = re.search(r'<input[^>]*name="totpToken"[^>]*>', first.text)
    assert field and "inputmode" not in field.group(0)
    assert "second factor" in first.text
    # A wrong code signs nobody in, and the field stays.
    wrong = next(t for t in ("123456", "654321") if t != totp_token(clock, key))
    refused_code = fill(client, acct.username, acct.password, totp=wrong)
    assert refused_code.status_code == 200 and set_cookie(refused_code, "jwt") is None
    assert 'name="totpToken"' in refused_code.text and "wrong or already used" in refused_code.text
    # The code without the password is no sign-in either.
    no_password = fill(client, acct.username, "not it", totp=totp_token(clock, key))
    assert set_cookie(no_password, "jwt") is None
    assert "Invalid username or password" in no_password.text
    assert signed_in(fill(client, acct.username, acct.password, totp=totp_token(clock, key)))
    # A recovery code works too, once.
    client.cookies.clear()
    assert signed_in(fill(client, acct.username, acct.password, totp=recovery[0]))
    client.cookies.clear()
    assert not signed_in(fill(client, acct.username, acct.password, totp=recovery[0]))


def audited_logins(svc: Services) -> int:
    return sum(1 for r in rows(svc) if r.event == "login")


@pytest.mark.parametrize("token", ["none", "wrong", "other browser", "no cookie"])
def test_a_forged_post_is_refused_before_the_password(
    svc: Services, client: TestClient, make_account: Any, token: str
) -> None:
    """Login CSRF: another site posts the attacker's credentials into the victim's browser."""
    attacker: Account = make_account()
    data = {"username": attacker.username, "password": attacker.password}
    if token == "wrong":
        client.get(SIGN_IN)
        data["csrf_token"] = "0" * 64
    elif token == "other browser":
        # A valid token of the attacker's own browser (its own nonce), not the victim's.
        with TestClient(create_app(svc=svc)) as theirs:
            data["csrf_token"] = csrf_of(theirs.get(SIGN_IN).text)
        client.get(SIGN_IN)  # the victim's browser has a nonce of its own
    elif token == "no cookie":
        # The victim's token, but the SameSite=Strict nonce is not sent cross-site.
        data["csrf_token"] = csrf_of(client.get(SIGN_IN).text)
        client.cookies.delete("relatch_csrf")
    logins = audited_logins(svc)
    resp = client.post(SIGN_IN, data=data, follow_redirects=False)
    assert resp.status_code == 403 and "This form has expired" in resp.text
    assert set_cookie(resp, "jwt") is None and set_cookie(resp, "relatch_device") is None
    assert audited_logins(svc) == logins  # no password was checked


HOSTILE_NEXT = [
    "https://evil.example/account/sessions",
    "//evil.example/account",
    "/\\evil.example",
    "\\\\evil.example",
    "/account/..//evil.example",
    "/account/../reset-password",
    "/account/%2F%2Fevil.example",
    "/account/\t/evil.example",
    "/account@evil.example",
    "/account.evil.example",
    "javascript:alert(1)",
    "data:text/html,hi",
    "/reset-password",
    " /account/sessions",
    "/account/sessions#https://evil.example",
    "/account/sessions?x=<script>",
    "/account/sign-in",
    "/account/" + "a" * 600,
    "http:/account/sessions",
    "[",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_cannot_lead_off_site_or_out_of_account(
    client: TestClient, make_account: Any, target: str
) -> None:
    acct: Account = make_account()
    page = client.get(SIGN_IN, params={"next": target})
    assert page.status_code == 200 and 'name="next" value=""' in page.text
    # Even posted straight in the form, with a valid token.
    data = {"csrf_token": csrf_of(page.text), "username": acct.username}
    data |= {"password": acct.password, "next": target}
    resp = client.post(SIGN_IN, data=data, follow_redirects=False)
    assert signed_in(resp) and resp.headers["location"] == SESSIONS
    # Signed in: the redirect of the GET is as safe.
    again = client.get(SIGN_IN, params={"next": target}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == SESSIONS


def test_the_signed_out_page_links_to_the_sign_in_page(client: TestClient) -> None:
    resp = client.get(SESSIONS)
    assert resp.status_code == 401 and 'href="/account/sign-in"' in resp.text
    french = client.get(SESSIONS, params={"lang": "fr"})
    assert 'href="/account/sign-in?lang=fr"' in french.text


def test_the_page_in_french(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    page = client.get(SIGN_IN, params={"lang": "fr"})
    assert '<html lang="fr">' in page.text and "Connectez-vous" in page.text
    assert 'action="/account/sign-in?lang=fr"' in page.text
    resp = fill(client, "nobody", "wrong!!", params={"lang": "fr"})
    assert "Nom d’utilisateur ou mot de passe incorrect" in resp.text
    done = fill(client, acct.username, acct.password, params={"lang": "fr"})
    assert signed_in(done) and done.headers["location"] == "/account/sessions?lang=fr"


# --- the failure limits of every sign-in, behind a trusted proxy --------------------------

HOME = "192.0.2.10"


def page_sign_in(browser: TestClient, ip: str, username: str, password: str) -> httpx.Response:
    return fill(browser, username, password, headers={"X-Forwarded-For": ip})


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_the_failure_limits_apply_and_a_known_browser_keeps_its_own(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, username = d.create(HOME, 1)
    laptop = d.browser()
    assert signed_in(page_sign_in(laptop, HOME, username, PASSWORD))
    device = laptop.cookies["relatch_device"]
    clock.advance(86400)
    # Strangers spend the account's shared budget, through this page and the API alike.
    for n, ip in enumerate(strangers(10)):
        if n % 2:
            assert d.login(ip, email, "nope").json() == WRONG
        else:
            wrong = page_sign_in(d.browser(), ip, email, "nope")
            assert wrong.status_code == 200 and "Invalid username or password" in wrong.text
    assert limited(d.login("100.64.250.9", email))
    # Now the right password from a stranger's browser is refused too: 429, Retry-After.
    cafe = page_sign_in(d.browser(), "198.18.4.4", username, PASSWORD)
    assert refused(cafe) and set_cookie(cafe, "jwt") is None
    assert "Too many attempts. Please wait" in cafe.text
    # The owner's laptop, elsewhere, is known by its device cookie and gets in.
    assert signed_in(page_sign_in(d.browser(device), "198.18.5.5", username, PASSWORD))
