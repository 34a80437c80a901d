"""The "my sessions" page (issue 14) through the ASGI client, on SQLite and PostgreSQL.

Owner side: the page lists the sessions (user agent, network, "this device") and the apps
holding grants; each button does what it says and comes back to the page (PRG). Attacker
side: a forged POST (no or a wrong CSRF field) changes nothing; another account's session
or app gets the same answer as an unknown id and stays; a GET never acts; no cookie, a
dead session or an API key alone gets the "not signed in" page, never a 500 or JSON.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.services.context import Services
from relatch.storage import oauth_clients
from relatch.storage import oauth_repo as store
from tests.conftest import Account
from tests.helpers.api import create_key

PAGE = "/account/sessions"
END = "/account/sessions/end"
END_OTHERS = "/account/sessions/end-others"
REVOKE = "/account/apps/revoke"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
SESSION_RE = re.compile(r'name="session" value="([^"]+)"')
ME = "/v1/api/user"


def sign_in(client: TestClient, acct: Account, agent: str) -> str:
    body = {"username": acct.username, "password": acct.password}
    resp = client.post("/v1/api-login", json=body, headers={"user-agent": agent})
    assert resp.json()["success"] is True, resp.text
    token: str = resp.json()["token"]
    return token


def alive(client: TestClient, token: str) -> bool:
    status = client.get(ME, headers={"x-jwt-token": token}).status_code
    assert status in (200, 401)
    return status == 200


def browse_as(client: TestClient, token: str) -> str:
    """This client is a browser signed in with `token`; the page's HTML."""
    client.cookies.set("jwt", token)
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    return page.text


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field"
    return found.group(1)


def session_ids(client: TestClient, token: str) -> dict[str, bool]:
    resp = client.get("/v1/api/user/sessions", headers={"x-jwt-token": token})
    return {s["id"]: s["current"] for s in resp.json()["sessions"]}


def new_app(svc: Services, name: str) -> str:
    app = store.create_client(
        svc, name, ["https://app.example/cb"], ["authorization_code"], ["openid"], False
    )
    return app.client_id


def holds(svc: Services, acct: Account, client_id: str) -> bool:
    return oauth_clients.has_consent(svc, acct.id, client_id, "openid")


def without_csrf(html: str) -> str:
    return CSRF_RE.sub("", html)


def test_the_page_lists_sessions_and_apps(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    acct: Account = make_account()
    phone = sign_in(client, acct, "Phone browser/1.0")
    laptop = sign_in(client, acct, "Laptop browser/2.0")
    client_id = new_app(svc, "Photo printer")
    oauth_clients.remember_consent(svc, acct.id, client_id, "openid email")
    html = browse_as(client, laptop)
    assert "Phone browser/1.0" in html and "Laptop browser/2.0" in html
    assert html.count("<dt>Network</dt>") == 2
    # "This device" names the session of the cookie, not the other one.
    current = re.search(r"<h3[^>]*>([^<]*)<span class=\"badge\">This device", html)
    assert current and "Laptop browser/2.0" in current.group(1)
    assert html.count('name="session"') == 2
    assert "Photo printer" in html and "email, openid" in html
    assert "End all other sessions" in html
    # Every form posts, and carries the CSRF field.
    forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
    assert len(forms) == 4
    for form in forms:
        assert 'method="post"' in form and 'name="csrf_token"' in form
    assert alive(client, phone) and alive(client, laptop)


def test_end_one_session_from_the_page(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    phone = sign_in(client, acct, "Phone browser/1.0")
    laptop = sign_in(client, acct, "Laptop browser/2.0")
    html = browse_as(client, laptop)
    (phone_id,) = [sid for sid, current in session_ids(client, laptop).items() if not current]
    resp = client.post(
        END, data={"csrf_token": csrf_of(html), "session": phone_id}, follow_redirects=False
    )
    assert resp.status_code == 303 and resp.headers["location"] == f"{PAGE}?done=session"
    assert not alive(client, phone) and alive(client, laptop)
    after = client.get(resp.headers["location"])
    assert after.status_code == 200 and "The session was ended" in after.text
    assert "Phone browser/1.0" not in after.text
    # Ended twice: the same answer as any id that is not one of mine.
    again = client.post(END, data={"csrf_token": csrf_of(html), "session": phone_id})
    assert again.status_code == 404 and "already ended, or is not one of yours" in again.text


def test_signing_out_from_the_page_clears_the_cookie(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    laptop = sign_in(client, acct, "Laptop browser/2.0")
    html = browse_as(client, laptop)
    mine = SESSION_RE.search(html).group(1)  # type: ignore[union-attr]
    resp = client.post(
        END, data={"csrf_token": csrf_of(html), "session": mine}, follow_redirects=False
    )
    assert resp.status_code == 303 and resp.headers["location"] == f"{PAGE}?done=signed-out"
    cleared = resp.headers["set-cookie"]
    assert cleared.startswith(("jwt=;", 'jwt="";')) and "Max-Age=0" in cleared
    assert not alive(client, laptop)
    page = client.get(resp.headers["location"])
    assert page.status_code == 401 and "You are signed out on this device" in page.text


def test_end_all_other_sessions_from_the_page(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    others = [sign_in(client, acct, f"Other/{n}") for n in range(3)]
    laptop = sign_in(client, acct, "Laptop browser/2.0")
    html = browse_as(client, laptop)
    resp = client.post(END_OTHERS, data={"csrf_token": csrf_of(html)}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"{PAGE}?done=others"
    assert "set-cookie" not in resp.headers or "jwt=" not in resp.headers["set-cookie"]
    assert not any(alive(client, t) for t in others)
    assert alive(client, laptop)
    after = client.get(resp.headers["location"]).text
    assert "Every other session was ended" in after and "End all other sessions" not in after


def test_revoke_an_app_from_the_page(client: TestClient, svc: Services, make_account: Any) -> None:
    acct: Account = make_account()
    kept, revoked = new_app(svc, "Kept app"), new_app(svc, "Revoked app")
    for client_id in (kept, revoked):
        oauth_clients.remember_consent(svc, acct.id, client_id, "openid")
    html = browse_as(client, sign_in(client, acct, "Laptop"))
    resp = client.post(
        REVOKE, data={"csrf_token": csrf_of(html), "app": revoked}, follow_redirects=False
    )
    assert resp.status_code == 303 and resp.headers["location"] == f"{PAGE}?done=app"
    assert not holds(svc, acct, revoked) and holds(svc, acct, kept)
    after = client.get(resp.headers["location"]).text
    assert "access was revoked" in after and "Revoked app" not in after and "Kept app" in after


@pytest.mark.parametrize(
    ("path", "fields"),
    [(END, {"session": "victim"}), (END_OTHERS, {}), (REVOKE, {"app": "victim"})],
)
@pytest.mark.parametrize("token", ["none", "wrong", "other browser"])
def test_a_forged_post_changes_nothing(
    client: TestClient,
    svc: Services,
    make_account: Any,
    path: str,
    fields: dict[str, str],
    token: str,
) -> None:
    acct: Account = make_account()
    other = sign_in(client, acct, "Other device")
    laptop = sign_in(client, acct, "Laptop")
    client_id = new_app(svc, "App")
    oauth_clients.remember_consent(svc, acct.id, client_id, "openid")
    real = {"session": next(iter(session_ids(client, other))), "app": client_id}
    data = {name: real[name] for name in fields}
    if token == "wrong":
        data["csrf_token"] = "0" * 64
    elif token == "other browser":
        # A valid token, but of another browser's nonce (the forger's own page).
        data["csrf_token"] = csrf_of(client.get("/reset-password").text)
        client.cookies.delete("relatch_csrf")
    browse_as(client, laptop)  # the victim's browser has its CSRF cookie and its session
    resp = client.post(path, data=data, follow_redirects=False)
    assert resp.status_code == 403, resp.text
    assert "This form has expired" in resp.text
    assert alive(client, other) and alive(client, laptop)
    assert holds(svc, acct, client_id)


@pytest.mark.parametrize(("path", "field"), [(END, "session"), (REVOKE, "app")])
def test_another_accounts_ids_answer_like_unknown_ones(
    client: TestClient, svc: Services, make_account: Any, path: str, field: str
) -> None:
    victim, attacker = make_account(), make_account()
    victim_token = sign_in(client, victim, "Victim")
    client_id = new_app(svc, "Victim's app")
    oauth_clients.remember_consent(svc, victim.id, client_id, "openid")
    theirs = next(iter(session_ids(client, victim_token))) if field == "session" else client_id
    html = browse_as(client, sign_in(client, attacker, "Attacker"))
    answers = []
    for target in (theirs, "no-such-id-at-all", ""):
        resp = client.post(path, data={"csrf_token": csrf_of(html), field: target})
        answers.append((resp.status_code, without_csrf(resp.text)))
    assert answers[0][0] == 404
    assert answers[0] == answers[1] == answers[2]
    assert alive(client, victim_token) and holds(svc, victim, client_id)


def test_a_get_never_acts(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    other = sign_in(client, acct, "Other")
    browse_as(client, sign_in(client, acct, "Laptop"))
    sid = next(iter(session_ids(client, other)))
    for path in (END, END_OTHERS, REVOKE):
        assert client.get(path, params={"session": sid}).status_code == 405
    assert client.get(PAGE, params={"session": sid, "done": "session"}).status_code == 200
    assert alive(client, other)
    # A link cannot make the page say something untrue either.
    signed_in = client.get(PAGE, params={"done": "signed-out"})
    assert signed_in.status_code == 200 and "signed out" not in signed_in.text
    assert 'role="status"' not in client.get(PAGE, params={"done": "<b>hi</b>"}).text


def test_a_suspended_account_is_not_signed_in(
    client: TestClient, make_account: Any, cli: CliRunner
) -> None:
    acct: Account = make_account()
    sign_in(client, acct, "Other")
    html = browse_as(client, sign_in(client, acct, "Laptop"))
    done = cli.invoke(cli_app, ["user", "suspend", "--email", acct.email, "--reason", "test"])
    assert done.exit_code == 0, done.output
    assert client.get(PAGE).status_code == 401
    resp = client.post(END_OTHERS, data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 401 and "You are not signed in" in resp.text


def test_not_signed_in_gets_a_page_not_json(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = sign_in(client, acct, "Laptop")
    key = create_key(client, {"x-jwt-token": token})["apiKey"]
    cases: list[dict[str, Any]] = [
        {},  # no credential at all
        {"cookies": {"jwt": "not.a.jwt"}},
        {"headers": {"x-jwt-token": token}},  # a page reads the browser's cookie only
        {"headers": {"x-api-key": key}},
    ]
    for case in cases:
        client.cookies.clear()
        for name, value in case.get("cookies", {}).items():
            client.cookies.set(name, value)
        resp = client.get(PAGE, headers=case.get("headers", {}))
        assert resp.status_code == 401, case
        assert resp.headers["content-type"].startswith("text/html")
        assert "You are not signed in" in resp.text and "Forgot your password?" in resp.text
    # A form posted without a session: the same page, nothing done.
    client.cookies.clear()
    html = client.get("/reset-password").text  # the signed-out page has no form
    resp = client.post(END_OTHERS, data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 401 and "You are not signed in" in resp.text
    assert alive(client, token)


def test_a_signed_out_session_cookie_shows_the_signed_out_page(
    client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    token = sign_in(client, acct, "Laptop")
    assert client.post("/v1/api/user/logout", headers={"x-jwt-token": token}).status_code == 200
    client.cookies.set("jwt", token)
    assert client.get(PAGE).status_code == 401


def test_the_sign_in_link_is_the_configured_one(
    client: TestClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(svc.settings, "sign_in_url", "https://app.example/login")
    resp = client.get(PAGE)
    assert resp.status_code == 401
    assert 'href="https://app.example/login"' in resp.text


def test_the_page_in_french_with_its_headers(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    client.cookies.set("jwt", sign_in(client, acct, "Laptop"))
    resp = client.get(PAGE, headers={"accept-language": "fr"})
    assert resp.status_code == 200 and '<html lang="fr">' in resp.text
    assert "Vos sessions et applications" in resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    chosen = client.get(PAGE, params={"lang": "fr"}).text
    assert 'action="/account/sessions/end?lang=fr"' in chosen
