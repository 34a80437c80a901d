"""The "my sessions" page used by a person in a real browser (Debian's chromium, headless)
against `relatch serve`: not signed in, follow "Sign in" to the sign-in form, a wrong
password then the right one, land on the page with the `jwt` cookie (HttpOnly, Lax); see
where the account is signed in, end another session, end all the others, revoke an app,
sign out; with JavaScript off (signing in too); the accessibility checks of the page tests,
the sign-in form included; the second-factor step. Screenshots: build/screenshots/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from relatch.core import totp
from relatch.storage.models_oauth import OAuthConsent
from tests.e2e.browser import accessibility_problems, chromium, shot
from tests.e2e.servers import Server, relatch_server

pytestmark = pytest.mark.e2e
DESKTOP = {"width": 1024, "height": 800}
NARROW = {"width": 320, "height": 640}
PASSWORD = "the old password 1"
PAGE = "/account/sessions"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-sessions-page")
    with relatch_server(workdir, RELATCH_LIMIT_SIGNUP_PER_IP="off") as srv:
        yield srv


def account(server: Server, name: str) -> int:
    resp = httpx.post(
        f"{server.url}/v1/api-user-create",
        json={
            "name": name.title(),
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "privacyPolicy": True,
        },
    )
    assert resp.json()["success"] is True, resp.text
    return int(resp.json()["id"])


def sign_in(server: Server, username: str, agent: str) -> str:
    resp = httpx.post(
        f"{server.url}/v1/api-login",
        json={"username": username, "password": PASSWORD},
        headers={"user-agent": agent},
    )
    assert resp.json()["success"] is True, resp.text
    return str(resp.json()["token"])


def alive(server: Server, token: str) -> bool:
    return httpx.get(f"{server.url}/v1/api/user", headers={"x-jwt-token": token}).status_code == 200


def grant_app(server: Server, user_id: int, name: str) -> str:
    """An OAuth client (the operator's CLI) that the account consented to."""
    done = server.cli(
        "oauth-client", "create", "--name", name, "--redirect-uri", "https://app.example/cb",
        "--grant", "authorization_code", "--scope", "openid", "--scope", "email",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    client_id = str(json.loads(done.stdout.strip().splitlines()[-1])["client_id"])
    # The consent the authorize page would remember (that flow is tests/e2e/test_oauth.py's).
    engine = create_engine(server.env["RELATCH_DATABASE_URL"])
    with Session(engine) as s, s.begin():
        s.add(
            OAuthConsent(
                user_id=user_id,
                client_id=client_id,
                scope="openid email",
                granted_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    return client_id


def browser_with(browser: Any, server: Server, token: str, **options: Any) -> Any:
    """A browser context signed in the way the app's web client is: the `jwt` cookie."""
    context = browser.new_context(viewport=options.pop("viewport", DESKTOP), **options)
    context.add_cookies([{"name": "jwt", "value": token, "url": server.url}])
    return context


def sign_in_on_the_page(page: Any, username: str, password: str) -> None:
    """Fill in the sign-in form as a person does (by its labels) and send it."""
    page.get_by_label("Username or e-mail address").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def session_cookie(context: Any) -> dict[str, Any]:
    (jwt,) = [c for c in context.cookies() if c["name"] == "jwt"]
    return dict(jwt)


def test_a_person_ends_a_stolen_session_and_revokes_an_app(browser: Any, server: Server) -> None:
    user_id = account(server, "adalovelace")
    thief = sign_in(server, "adalovelace", "Thief's browser/6.6")
    other = sign_in(server, "adalovelace", "Old tablet/1.0")
    grant_app(server, user_id, "Photo printer")
    # Not signed in yet: the page says so and leads to the sign-in form.
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", user_agent="My laptop/2.0")
    page = context.new_page()
    page.goto(f"{server.url}{PAGE}")
    page.get_by_role("heading", name="You are not signed in").wait_for()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("heading", name="Sign in to your account").wait_for()
    shot(page, "sessions-00-sign-in")
    # A wrong password first: one message, and the form again.
    sign_in_on_the_page(page, "adalovelace", "not my password")
    page.get_by_role("alert").wait_for()
    assert "Invalid username or password" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Username or e-mail address").input_value() == "adalovelace"
    assert page.get_by_label("Password").input_value() == ""
    assert not [c for c in context.cookies() if c["name"] == "jwt"]
    sign_in_on_the_page(page, "adalovelace", PASSWORD)
    page.get_by_role("heading", name="Your sessions and apps").wait_for()
    assert page.url == f"{server.url}{PAGE}"
    # The session cookie: out of reach of scripts, not sent with cross-site posts.
    jwt = session_cookie(context)
    assert jwt["httpOnly"] is True and jwt["sameSite"] == "Lax" and jwt["path"] == "/"
    mine = str(jwt["value"])
    shot(page, "sessions-01-list")
    mine_item = page.get_by_role("listitem").filter(has_text="This device")
    assert "My laptop/2.0" in mine_item.inner_text()
    assert "Photo printer" in page.content()

    stolen = page.get_by_role("listitem").filter(has_text="Thief's browser/6.6")
    stolen.get_by_role("button", name="End this session").click()
    page.get_by_role("status").wait_for()
    assert "The session was ended" in page.get_by_role("status").inner_text()
    assert "Thief's browser/6.6" not in page.content()
    assert not alive(server, thief) and alive(server, other) and alive(server, mine)
    shot(page, "sessions-02-ended")

    page.get_by_role("button", name="End all other sessions").click()
    page.get_by_role("status").wait_for()
    assert "Every other session was ended" in page.get_by_role("status").inner_text()
    assert not alive(server, other) and alive(server, mine)

    page.get_by_role("button", name="Revoke access").click()
    page.get_by_role("status").wait_for()
    assert "No app has access to your account." in page.content()

    page.get_by_role("button", name="Sign out on this device").click()
    page.get_by_role("heading", name="You are not signed in").wait_for()
    assert "You are signed out on this device" in page.get_by_role("status").inner_text()
    assert not alive(server, mine)
    assert not [c for c in context.cookies() if c["name"] == "jwt"]  # the browser forgot it
    shot(page, "sessions-03-signed-out")
    context.close()


def test_it_works_with_javascript_off(browser: Any, server: Server) -> None:
    account(server, "nojs")
    other = sign_in(server, "nojs", "Other/1.0")
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/account/sign-in?next={PAGE}")
    sign_in_on_the_page(page, "nojs@example.com", PASSWORD)  # by address, too
    page.get_by_role("heading", name="Your sessions and apps").wait_for()
    mine = str(session_cookie(context)["value"])
    page.get_by_role("button", name="End all other sessions").click()
    page.get_by_role("status").wait_for()
    assert not alive(server, other) and alive(server, mine)
    context.close()


def test_signing_in_with_a_second_factor(browser: Any, server: Server) -> None:
    """The form asks for the authenticator's code once the password matched; the code goes
    in the field a password manager or the phone fills (`autocomplete=one-time-code`)."""
    made = server.cli(
        "user", "create", "--email", "twofa@example.com", "--username", "twofa",
        "--name", "Two Factors", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr  # the operator vouches: activated
    headers = {"x-jwt-token": sign_in(server, "twofa", "Setup/1.0")}
    mfa = f"{server.url}/v1/api/user/mfa/totp"
    key = httpx.post(f"{mfa}/create-key", headers=headers).json()["key"]
    now = int(time.time())
    body = {"key": key, "totpToken": totp.token_at(key, now)}
    assert httpx.post(f"{mfa}/set-key", json=body, headers=headers).json()["success"] is True

    context = browser.new_context(viewport=DESKTOP, user_agent="Two factor laptop/1.0")
    page = context.new_page()
    page.goto(f"{server.url}/account/sign-in")
    sign_in_on_the_page(page, "twofa", PASSWORD)
    code = page.get_by_label("Code from your authenticator app")
    code.wait_for()
    assert code.get_attribute("autocomplete") == "one-time-code"
    assert "second factor" in page.get_by_role("alert").inner_text()
    assert not [c for c in context.cookies() if c["name"] == "jwt"]
    shot(page, "sessions-06-second-factor")
    # The password again, with the next step's code (the set-key step used this one up).
    page.get_by_label("Password").fill(PASSWORD)
    code.fill(totp.token_at(key, now + 30))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your sessions and apps").wait_for()
    assert alive(server, str(session_cookie(context)["value"]))
    mine_item = page.get_by_role("listitem").filter(has_text="This device")
    assert "Two factor laptop/1.0" in mine_item.inner_text()
    context.close()


def test_a_form_from_another_site_ends_nothing(browser: Any, server: Server) -> None:
    """CSRF, in the browser: a page elsewhere posts the form at the victim's session (the
    cookie is SameSite=Lax and the form has no CSRF field: refused either way)."""
    account(server, "victim")
    other = sign_in(server, "victim", "Other/1.0")
    mine = sign_in(server, "victim", "Mine/1.0")
    context = browser_with(browser, server, mine)
    page = context.new_page()
    page.goto(f"{server.url}{PAGE}")  # the victim has the page's CSRF cookie too
    evil = context.new_page()
    evil.set_content(
        f'<form method="post" action="{server.url}{PAGE}/end-others">'
        '<button type="submit">Win a prize</button></form>'
    )
    evil.get_by_role("button", name="Win a prize").click()
    evil.wait_for_load_state()
    assert alive(server, other) and alive(server, mine)
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, NARROW], ids=["desktop", "320px"])
def test_accessibility(browser: Any, server: Server, viewport: dict[str, int]) -> None:
    name = f"a11y{viewport['width']}"
    user_id = account(server, name)
    sign_in(server, name, "Other browser/1.0")
    mine = sign_in(server, name, "Mine/1.0")
    grant_app(server, user_id, "Calendar")
    # bypass_csp only here: axe-core is injected as a script the page's CSP would refuse.
    context = browser_with(browser, server, mine, viewport=viewport, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}{PAGE}")
    assert accessibility_problems(page) == [], "the list"
    # Nothing overflows sideways at 320 px (WCAG 2.2 1.4.10 reflow).
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.get_by_role("button", name="End this session").click()
    page.get_by_role("status").wait_for()
    assert accessibility_problems(page) == [], "with the notice"
    page.goto(f"{server.url}{PAGE}?lang=fr")
    assert accessibility_problems(page) == [], "in French"
    shot(page, f"sessions-04-{viewport['width']}-fr")
    context.clear_cookies()
    page.goto(f"{server.url}{PAGE}")
    assert accessibility_problems(page) == [], "not signed in"
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("heading", name="Sign in to your account").wait_for()
    assert accessibility_problems(page) == [], "the sign-in form"
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.get_by_role("button", name="Sign in").click()  # nothing filled in
    page.get_by_role("alert").wait_for()
    assert accessibility_problems(page) == [], "the sign-in form with its errors"
    shot(page, f"sessions-05-{viewport['width']}-sign-in-errors")
    page.goto(f"{server.url}/account/sign-in?lang=fr")
    sign_in_on_the_page_fr = page.get_by_label("Nom d’utilisateur ou adresse e-mail")
    sign_in_on_the_page_fr.fill(name)
    page.get_by_label("Mot de passe").fill("pas le bon")
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("alert").wait_for()
    assert accessibility_problems(page) == [], "the sign-in form in French, refused"
    context.close()
