"""The authorize endpoint through the ASGI client, on SQLite and PostgreSQL: request text
Authlib cannot quote, parameter lengths, response modes, and forced re-authentication
(prompt=login, max_age, prompt=none; OIDC Core 3.1.2.1)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.errors import UnsupportedResponseTypeError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.http.app import create_app
from relatch.oauth import server, store
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage.models_oauth import OAuthCode, OAuthToken
from tests.conftest import Account, FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.api import session_headers
from tests.helpers.totp import enable as enable_totp
from tests.helpers.totp import token as totp_token

AUTHORIZE = "/v1/oauth/authorize"
REDIRECT = "https://app.example.com/cb"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
VERIFIER = "v" * 50
CHALLENGE = create_s256_code_challenge(VERIFIER)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback; the public URL is what it judges.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


@pytest.fixture
def web(svc: Services) -> Iterator[TestClient]:
    """A person's browser on the public origin (Secure cookies are sent back)."""
    app = create_app(svc=svc)
    with TestClient(app, base_url="https://relatch.test", raise_server_exceptions=False) as c:
        yield c


def new_client(svc: Services, *grants: str) -> store.NewClient:
    return store.create_client(
        svc, "App", [REDIRECT], list(grants), ["openid", "email", "profile"], public=False
    )


def code_query(app: store.NewClient, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st-1",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **extra,
    }


def csrf_of(page: Any) -> str:
    found = CSRF_RE.search(page.text)
    assert found, page.text
    return found.group(1)


def is_signin(page: Any) -> bool:
    return bool(page.status_code == 200 and 'name="password"' in page.text)


def is_consent(page: Any) -> bool:
    return bool(page.status_code == 200 and 'name="decision"' in page.text)


def hidden_fields(page: Any) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))


def post(web: TestClient, query: dict[str, str], page: Any, **data: str) -> Any:
    fields = {**hidden_fields(page), **data}
    return web.post(AUTHORIZE, params=query, data=fields, follow_redirects=False)


def sign_in(web: TestClient, query: dict[str, str], acct: Account, page: Any = None) -> Any:
    page = page if page is not None else web.get(AUTHORIZE, params=query)
    assert is_signin(page), page.text
    return post(web, query, page, step="signin", username=acct.username, password=acct.password)


def through(web: TestClient, query: dict[str, str], acct: Account) -> Any:
    """Sign in if asked, allow if asked: the answer that goes back to the client."""
    page = web.get(AUTHORIZE, params=query, follow_redirects=False)
    if is_signin(page):
        page = sign_in(web, query, acct, page)
    if is_consent(page):
        page = post(web, query, page, step="consent", decision="allow")
    return page


def location(resp: Any) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    assert resp.status_code == 302, (resp.status_code, resp.text[:500])
    parts = urlsplit(resp.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT
    return parse_qs(parts.query), parse_qs(parts.fragment)


def code_of(resp: Any) -> str:
    query, _ = location(resp)
    assert "code" in query, query
    return query["code"][0]


def id_token_claims(web: TestClient, app: store.NewClient, code: str) -> dict[str, Any]:
    assert app.client_secret is not None
    resp = web.post(
        "/v1/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        },
        auth=(app.client_id, app.client_secret),
    )
    assert resp.status_code == 200, resp.text
    payload = resp.json()["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def counts(svc: Services) -> tuple[int, int]:
    with svc.sessions() as s:
        codes = s.scalar(select(func.count()).select_from(OAuthCode))
        tokens = s.scalar(select(func.count()).select_from(OAuthToken))
    return int(codes or 0), int(tokens or 0)


# 1. Request text Authlib cannot put in an error_description ------------------------------


@pytest.mark.parametrize("bad", ['"', "\\", "\u00e9", "\x7f"])
def test_unquotable_redirect_uri_is_an_error_page(
    svc: Services, web: TestClient, make_account: Any, bad: str
) -> None:
    """Authlib quoted the redirect URI into its error_description, which refuses `"`, `\\`
    and non-ASCII (ValueError: a 500). Not registered: the error page, no redirect."""
    app = new_client(svc, "authorization_code")
    query = code_query(app, redirect_uri=REDIRECT + bad)
    resp = web.get(AUTHORIZE, params=query, follow_redirects=False)
    assert resp.status_code == 400, resp.text
    assert "location" not in resp.headers
    assert "invalid_request" in resp.text and resp.headers["content-type"].startswith("text/html")
    assert REDIRECT not in resp.text  # nothing of the request is quoted back
    # Signed in, and posting the consent step: still refused, and nothing stored.
    acct = make_account()
    sign_in(web, code_query(app), acct)
    page = web.get(AUTHORIZE, params=code_query(app))
    resp = post(web, query, page, step="consent", decision="allow")
    assert resp.status_code == 400 and "location" not in resp.headers, resp.text
    assert counts(svc) == (0, 0)


def test_the_error_page_quotes_nothing_of_the_request(svc: Services, web: TestClient) -> None:
    """Text injection: the page said 'Redirect URI <anything> is not supported'."""
    app = new_client(svc, "authorization_code")
    said = "https://app.example.com/x Your account is locked, call 555-0100"
    resp = web.get(AUTHORIZE, params=code_query(app, redirect_uri=said))
    assert resp.status_code == 400
    assert "555-0100" not in resp.text and "locked" not in resp.text


def test_unquotable_client_id_is_refused(svc: Services, web: TestClient) -> None:
    """NUL reached the client look-up (PostgreSQL refuses NUL in text: a 500)."""
    for client_id in ("a\x00b", '\u00e9"\\'):
        resp = web.get(AUTHORIZE, params={"response_type": "code", "client_id": client_id})
        assert resp.status_code == 400 and "invalid_client" in resp.text, resp.text
        token = web.post("/v1/oauth/token", data={"grant_type": "password", "client_id": client_id})
        assert token.status_code in (400, 401) and token.json()["error"] == "invalid_client"


# 2. Parameter lengths and characters, checked at authorize time --------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nonce", "n" * 257),
        ("nonce", "a\x00b"),
        ("code_challenge", "c" * 129),
        ("scope", "openid " + "x" * 300),
        ("max_age", "\u00b2"),
        ("max_age", "-1"),
        ("response_mode", "r" * 40),
    ],
)
def test_an_oversized_or_control_parameter_is_invalid_request(
    svc: Services, web: TestClient, make_account: Any, name: str, value: str
) -> None:
    """A nonce over its column (256) got to consent and failed the INSERT on PostgreSQL."""
    app = new_client(svc, "authorization_code")
    acct = make_account()
    resp = through(web, code_query(app, **{name: value}), acct)
    query, _ = location(resp)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st-1"]
    assert "code" not in query
    assert counts(svc) == (0, 0)


@pytest.mark.parametrize("state", ["s" * 1025, "a\x00b", "a\nb"])
def test_an_unusable_state_is_not_sent_back(svc: Services, web: TestClient, state: str) -> None:
    """The state would be echoed into the redirect: refused on the error page instead."""
    app = new_client(svc, "authorization_code")
    resp = web.get(AUTHORIZE, params=code_query(app, state=state), follow_redirects=False)
    assert resp.status_code == 400 and "location" not in resp.headers
    assert "invalid_request" in resp.text
    assert counts(svc) == (0, 0)


def test_parameters_at_their_limits_work(svc: Services, web: TestClient, make_account: Any) -> None:
    app = new_client(svc, "authorization_code")
    nonce, state = "n" * 256, "s" * 1024
    resp = through(web, code_query(app, nonce=nonce, state=state), make_account())
    query, _ = location(resp)
    assert query["state"] == [state]
    assert id_token_claims(web, app, query["code"][0])["nonce"] == nonce


# 3. Tokens never in the query string ---------------------------------------------------


@pytest.mark.parametrize("response_type", ["id_token token", "id_token", "token"])
def test_query_mode_is_refused_for_token_responses(
    svc: Services, web: TestClient, make_account: Any, response_type: str
) -> None:
    """Multiple Response Type Encoding Practices 2.1: tokens never in the query."""
    app = new_client(svc, "implicit")
    query = {
        "response_type": response_type,
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "nonce": "n-1",
        "state": "st-1",
        "response_mode": "query",
    }
    resp = through(web, query, make_account())
    in_query, in_fragment = location(resp)
    assert "access_token" not in resp.headers["location"]
    assert "id_token" not in in_query and not in_query
    assert in_fragment["error"] == ["invalid_request"] and in_fragment["state"] == ["st-1"]
    assert counts(svc) == (0, 0)
    # The default (fragment) still works for the owner.
    del query["response_mode"]
    _, granted = location(through(web, query, make_account()))
    assert "error" not in granted and ("access_token" in granted or "id_token" in granted)


def test_code_mode_other_than_query_is_refused(
    svc: Services, web: TestClient, make_account: Any
) -> None:
    app = new_client(svc, "authorization_code")
    for mode in ("fragment", "form_post"):
        query, _ = location(through(web, code_query(app, response_mode=mode), make_account()))
        assert query["error"] == ["invalid_request"]
    assert counts(svc) == (0, 0)
    assert code_of(through(web, code_query(app, response_mode="query"), make_account()))


def test_discovery_lists_the_modes_served(web: TestClient) -> None:
    doc = web.get("/v1/.well-known/openid-configuration").json()
    assert doc["response_modes_supported"] == ["query", "fragment"]


# 4. Forced re-authentication ----------------------------------------------------------


def signed_in_with_consent(
    svc: Services, web: TestClient, make_account: Any
) -> tuple[store.NewClient, Account]:
    """An owner who signed in and allowed the app before (the cookie is in `web`)."""
    app = new_client(svc, "authorization_code")
    acct = make_account()
    assert code_of(through(web, code_query(app), acct))
    return app, acct


def test_prompt_login_consent_post_cannot_skip_the_password(
    svc: Services, web: TestClient, make_account: Any, clock: FakeClock
) -> None:
    app, acct = signed_in_with_consent(svc, web, make_account)
    before = counts(svc)
    clock.advance(30)
    query = code_query(app, prompt="login")
    page = web.get(AUTHORIZE, params=query)
    assert is_signin(page)  # shown although signed in and consented
    # Someone at the signed-in browser posts the consent step instead of the password.
    skipped = post(web, query, page, step="consent", decision="allow")
    assert is_signin(skipped), (skipped.status_code, skipped.headers.get("location"))
    forged = post(web, query, page, step="consent", decision="allow", flow="1.x.y")
    assert is_signin(forged)
    wrong = post(web, query, page, step="signin", username=acct.username, password="nope nope")
    assert wrong.status_code == 200 and "location" not in wrong.headers
    assert counts(svc) == before
    # The owner types the password: the code, and the ID token says when.
    clock.advance(5)
    fresh_at = int(clock().timestamp())
    done = sign_in(web, query, acct, page)
    assert id_token_claims(web, app, code_of(done))["auth_time"] == fresh_at


def test_prompt_login_then_consent_does_not_loop(
    svc: Services, web: TestClient, make_account: Any, clock: FakeClock
) -> None:
    app = new_client(svc, "authorization_code")
    acct = make_account()
    sign_in(web, code_query(app, scope="email"), acct)  # signed in, no consent for openid
    clock.advance(60)
    query = code_query(app, prompt="login")
    consent = sign_in(web, query, acct)
    assert is_consent(consent)
    clock.advance(20)  # reading the consent page
    code = code_of(post(web, query, consent, step="consent", decision="allow"))
    assert id_token_claims(web, app, code)["auth_time"] == int(clock().timestamp()) - 20
    # The proof of that sign-in belongs to that request: not to another one.
    other = code_query(app, prompt="login", state="st-2")
    assert is_signin(post(web, other, consent, step="consent", decision="allow"))


def test_max_age_requires_a_recent_sign_in(
    svc: Services, web: TestClient, make_account: Any, clock: FakeClock
) -> None:
    signed_at = int(clock().timestamp())
    app, acct = signed_in_with_consent(svc, web, make_account)
    clock.advance(100)
    # Recent enough: straight back, and the ID token carries the sign-in time.
    recent = web.get(AUTHORIZE, params=code_query(app, max_age="100"), follow_redirects=False)
    assert id_token_claims(web, app, code_of(recent))["auth_time"] == signed_at
    # Too old: sign in again, also when the consent step is posted directly.
    query = code_query(app, max_age="99")
    page = web.get(AUTHORIZE, params=query)
    assert is_signin(page)
    assert is_signin(post(web, query, page, step="consent", decision="allow"))
    clock.advance(1)
    again = sign_in(web, query, acct, page)
    assert id_token_claims(web, app, code_of(again))["auth_time"] == signed_at + 101


def test_max_age_zero_is_a_fresh_sign_in_that_completes(
    svc: Services, web: TestClient, make_account: Any, clock: FakeClock
) -> None:
    app, acct = signed_in_with_consent(svc, web, make_account)
    clock.advance(1)
    query = code_query(app, max_age="0")
    assert is_signin(web.get(AUTHORIZE, params=query))
    assert code_of(sign_in(web, query, acct))


@pytest.mark.parametrize("scope", ["openid email", "email"])
def test_prompt_none_without_a_session_is_login_required(
    svc: Services, web: TestClient, scope: str
) -> None:
    app = new_client(svc, "authorization_code")
    resp = web.get(
        AUTHORIZE, params=code_query(app, prompt="none", scope=scope), follow_redirects=False
    )
    query, _ = location(resp)
    assert query["error"] == ["login_required"] and query["state"] == ["st-1"]


def test_prompt_none_with_a_stale_sign_in_is_login_required(
    svc: Services, web: TestClient, make_account: Any, clock: FakeClock
) -> None:
    app, _acct = signed_in_with_consent(svc, web, make_account)
    clock.advance(61)
    resp = web.get(
        AUTHORIZE, params=code_query(app, prompt="none", max_age="60"), follow_redirects=False
    )
    assert location(resp)[0]["error"] == ["login_required"]
    ok = web.get(AUTHORIZE, params=code_query(app, prompt="none"), follow_redirects=False)
    assert code_of(ok)  # the owner's silent sign-in still works


def test_prompt_login_asks_for_the_second_factor_too(
    svc: Services,
    web: TestClient,
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
) -> None:
    app, acct = signed_in_with_consent(svc, web, make_account)
    headers = session_headers(client, acct)
    key, _ = enable_totp(client, clock, headers)
    clock.advance(60)
    query = code_query(app, prompt="login")
    password_only = sign_in(web, query, acct)
    assert password_only.status_code == 200 and 'name="totpToken"' in password_only.text
    assert "location" not in password_only.headers
    both = post(
        web,
        query,
        password_only,
        step="signin",
        username=acct.username,
        password=acct.password,
        totpToken=totp_token(clock, key),
    )
    assert code_of(both)


def test_quotable_rewords_any_authlib_error_and_nothing_else() -> None:
    """The cause, not the example: whichever Authlib error could not be built."""

    def refuse() -> None:
        raise UnsupportedResponseTypeError("type '\u00e9'", "\u00e9", redirect_uri=REDIRECT)

    with pytest.raises(OAuth2Error) as caught:
        server.quotable(refuse)
    error = caught.value
    assert error.error == "unsupported_response_type" and not error.description
    assert error.redirect_uri is None and error.uri is None
    with pytest.raises(ValueError, match="invalid literal"):
        server.quotable(lambda: int("x"))  # a bug stays a bug
