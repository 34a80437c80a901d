"""OAuth2 and OpenID Connect against a real `relatch serve`, driven by Authlib's OAuth2 client.

The sign-in and consent pages are posted with `requests` as a browser would (CSRF field
parsed from the page); ID tokens are checked against the published JWKS with joserfc.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pyotp
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import CODE_LINE
from tests.e2e.servers import Server, relatch_server

pytestmark = pytest.mark.e2e
REDIRECT = "https://client.example/callback"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-oauth")
    # Many accounts from one test IP: the sign-up limit is not what these tests are about.
    with relatch_server(workdir, RELATCH_LIMIT_SIGNUP_PER_IP="off") as srv:
        yield srv


@dataclass
class Person:
    id: int
    username: str
    email: str
    password: str = PASSWORD


def make_person(server: Server) -> Person:
    n = secrets.token_hex(4)
    body = {
        "name": f"Person {n}",
        "username": f"person-{n}",
        "email": f"person-{n}@example.com",
        "password": PASSWORD,
        "privacyPolicy": True,
    }
    data = requests.post(f"{server.url}/v1/api-user-create", json=body, timeout=10).json()
    assert data["success"] is True, data
    # Activated with its mailed code: consent and tokens are only for a proven address.
    login = {"username": body["username"], "password": PASSWORD}
    jwt = requests.post(f"{server.url}/v1/api-login", json=login, timeout=10).json()["token"]
    code = server.mailed_code(body["email"], "activation code")
    done = requests.post(
        f"{server.url}/v1/api/user/activate",
        json={"code": code},
        headers={"x-jwt-token": jwt},
        timeout=10,
    )
    assert done.json() == {"success": True}, done.text
    return Person(data["id"], body["username"], body["email"])


def register(server: Server, *grants: str, public: bool = False, scopes: str = "") -> Any:
    args = ["oauth-client", "create", "--name", "Test App", "--redirect-uri", REDIRECT]
    for g in grants:
        args += ["--grant", g]
    for s in (scopes or "openid email profile").split():
        args += ["--scope", s]
    if public:
        args.append("--public")
    done = server.cli(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


class Forms(HTMLParser):
    """Every form of a page: action and its inputs (name -> value)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}, "buttons": []})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            if tag == "button":
                self.forms[-1]["buttons"].append((a["name"], a.get("value")))
            else:
                self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def form_of(resp: requests.Response) -> dict[str, Any]:
    parser = Forms()
    parser.feed(resp.text)
    assert len(parser.forms) == 1, resp.text
    return parser.forms[0]


class Browser:
    """A person's browser: cookies kept, redirects to the client not followed."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = requests.Session()

    def open(self, url: str) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=10)

    def submit(self, page: requests.Response, **values: str) -> requests.Response:
        form = form_of(page)
        fields = {**form["fields"], **values}
        return self.http.post(
            urljoin(page.url, form["action"]), data=fields, allow_redirects=False, timeout=10
        )

    def authorize(self, url: str, person: Person, *, decision: str = "allow") -> str:
        """Sign in if asked, consent if asked; the Location sent back to the client."""
        page = self.open(url)
        if page.status_code == 200 and 'name="password"' in page.text:
            page = self.submit(page, username=person.username, password=person.password)
        if page.status_code == 200 and 'name="decision"' in page.text:
            assert ("decision", "allow") in form_of(page)["buttons"]
            page = self.submit(page, decision=decision)
        assert page.status_code == 302, (page.status_code, page.text)
        return str(page.headers["Location"])


def jwks(server: Server) -> KeySet:
    data = requests.get(f"{server.url}/v1/oauth/jwks", timeout=10).json()
    return KeySet.import_key_set(data)


def id_claims(server: Server, id_token: str, client_id: str) -> dict[str, Any]:
    token = jwt.decode(id_token, jwks(server), algorithms=["RS256"])
    assert token.header["kid"]
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": f"{server.url}/v1"},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
    )
    registry.validate(token.claims)
    return dict(token.claims)


def user_with(server: Server, access_token: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v1/api/user",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def authorize_url(server: Server) -> str:
    return f"{server.url}/v1/oauth/authorize"


def token_url(server: Server) -> str:
    return f"{server.url}/v1/oauth/token"


def code_flow_tokens(
    server: Server, client: Any, person: Person, browser: Browser | None = None
) -> dict[str, Any]:
    oauth = OAuth2Session(
        client["client_id"],
        client.get("client_secret"),
        scope="openid email profile",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = oauth.create_authorization_url(
        authorize_url(server), nonce="n-" + secrets.token_hex(8), code_verifier=verifier
    )
    location = (browser or Browser(server)).authorize(url, person)
    token = oauth.fetch_token(
        token_url(server), authorization_response=location, code_verifier=verifier
    )
    return dict(token)


# --- discovery --------------------------------------------------------------------------


def test_discovery_document(server: Server) -> None:
    doc = requests.get(f"{server.url}/v1/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == f"{server.url}/v1"
    assert doc["authorization_endpoint"] == f"{server.url}/v1/oauth/authorize"
    assert doc["token_endpoint"] == f"{server.url}/v1/oauth/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["scopes_supported"]) == {"openid", "email", "profile"}
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert keys and all("d" not in k and k["kty"] == "RSA" for k in keys)  # public halves only


# --- authorization code -----------------------------------------------------------------


def test_code_flow_confidential_client_with_id_token(server: Server) -> None:
    client = register(server, "authorization_code", "refresh_token")
    person = make_person(server)
    oauth = OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope="openid email profile",
        redirect_uri=REDIRECT,
    )
    nonce = secrets.token_urlsafe(12)
    url, state = oauth.create_authorization_url(authorize_url(server), nonce=nonce)
    browser = Browser(server)
    location = browser.authorize(url, person)
    assert location.startswith(REDIRECT) and f"state={state}" in location
    token = oauth.fetch_token(token_url(server), authorization_response=location)
    assert token["token_type"].lower() == "bearer" and token["refresh_token"]

    claims = id_claims(server, token["id_token"], client["client_id"])
    assert claims["sub"] == str(person.id) and claims["nonce"] == nonce
    assert claims["email"] == person.email and claims["preferred_username"] == person.username

    info = oauth.get(f"{server.url}/v1/oauth/userinfo").json()
    assert info["sub"] == str(person.id) and info["email"] == person.email
    # The activation code proved the address (before it, the claim says false).
    assert info["email_verified"] is True and info["name"].startswith("Person")

    me = user_with(server, token["access_token"])
    assert me.status_code == 200 and me.json()["email"] == person.email

    # Consent is remembered for this client and these scopes: straight back to the client.
    again, _ = oauth.create_authorization_url(authorize_url(server))
    page = browser.open(again)
    assert page.status_code == 302 and "code=" in page.headers["Location"]

    # The code is single use.
    code = parse_qs(urlsplit(location).query)["code"][0]
    replay = requests.post(
        token_url(server),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_scopes_limit_the_claims(server: Server) -> None:
    client = register(server, "authorization_code")
    person = make_person(server)
    oauth = OAuth2Session(
        client["client_id"], client["client_secret"], scope="openid", redirect_uri=REDIRECT
    )
    url, _ = oauth.create_authorization_url(authorize_url(server))
    token = oauth.fetch_token(
        token_url(server), authorization_response=Browser(server).authorize(url, person)
    )
    assert "refresh_token" not in token  # not a grant of this client
    info = oauth.get(f"{server.url}/v1/oauth/userinfo").json()
    assert info == {"sub": str(person.id)}


def test_deny_sends_access_denied(server: Server) -> None:
    client = register(server, "authorization_code")
    oauth = OAuth2Session(
        client["client_id"], client["client_secret"], scope="openid", redirect_uri=REDIRECT
    )
    url, state = oauth.create_authorization_url(authorize_url(server))
    location = Browser(server).authorize(url, make_person(server), decision="deny")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]


def test_unknown_redirect_uri_is_not_followed(server: Server) -> None:
    client = register(server, "authorization_code")
    oauth = OAuth2Session(
        client["client_id"], client["client_secret"], redirect_uri="https://evil.example/cb"
    )
    url, _ = oauth.create_authorization_url(authorize_url(server))
    page = Browser(server).open(url)
    assert page.status_code == 400 and "Location" not in page.headers


def test_forms_need_the_csrf_field(server: Server) -> None:
    client = register(server, "authorization_code")
    oauth = OAuth2Session(client["client_id"], client["client_secret"], redirect_uri=REDIRECT)
    url, _ = oauth.create_authorization_url(authorize_url(server))
    browser = Browser(server)
    page = browser.open(url)
    person = make_person(server)
    forged = browser.submit(page, username=person.username, password=PASSWORD, csrf_token="x")
    assert forged.status_code == 403 and 'name="password"' in forged.text


def test_a_replayed_code_revokes_the_tokens_it_issued(server: Server) -> None:
    """RFC 6749 4.1.2: a code used twice means one holder is not the client; the tokens
    the first use bought are revoked, refresh tokens included."""
    client = register(server, "authorization_code", "refresh_token")
    oauth = OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope="openid email",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(authorize_url(server), code_verifier=verifier)
    location = Browser(server).authorize(url, make_person(server))
    first = dict(
        oauth.fetch_token(
            token_url(server), authorization_response=location, code_verifier=verifier
        )
    )
    assert user_with(server, first["access_token"]).status_code == 200
    auth = (client["client_id"], client["client_secret"])
    introspect = f"{server.url}/v1/oauth/introspect"

    def active(token: str) -> bool:
        seen = requests.post(introspect, data={"token": token}, auth=auth, timeout=10)
        return bool(seen.json()["active"])

    assert active(first["access_token"]) and active(first["refresh_token"])

    with pytest.raises(OAuthError) as replay:
        oauth.fetch_token(
            token_url(server), authorization_response=location, code_verifier=verifier
        )
    assert replay.value.error == "invalid_grant"

    assert user_with(server, first["access_token"]).status_code == 401
    assert not active(first["access_token"]) and not active(first["refresh_token"])
    with pytest.raises(OAuthError) as refresh:
        oauth.refresh_token(token_url(server), refresh_token=first["refresh_token"])
    assert refresh.value.error == "invalid_grant"


# --- PKCE -------------------------------------------------------------------------------


def test_public_client_needs_pkce_s256(server: Server) -> None:
    client = register(server, "authorization_code", public=True)
    person = make_person(server)
    assert "client_secret" not in client
    assert code_flow_tokens(server, client, person)["access_token"]

    # Without a code challenge: refused at the authorize endpoint (error to the client).
    bare = OAuth2Session(client["client_id"], scope="openid", redirect_uri=REDIRECT)
    url, _ = bare.create_authorization_url(authorize_url(server))
    page = Browser(server).open(url)
    assert page.status_code == 302
    assert parse_qs(urlsplit(page.headers["Location"]).query)["error"] == ["invalid_request"]

    # `plain` is refused too.
    plain = OAuth2Session(
        client["client_id"], scope="openid", redirect_uri=REDIRECT, code_challenge_method="plain"
    )
    url, _ = plain.create_authorization_url(authorize_url(server), code_verifier="v" * 50)
    page = Browser(server).open(url)
    assert parse_qs(urlsplit(page.headers["Location"]).query)["error"] == ["invalid_request"]

    # A wrong verifier, and a missing one, are refused at the token endpoint.
    pkce = OAuth2Session(
        client["client_id"], scope="openid", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    for sent in ("w" * 60, None):
        url, _ = pkce.create_authorization_url(
            authorize_url(server), code_verifier=secrets.token_urlsafe(48)
        )
        location = Browser(server).authorize(url, person)
        code = parse_qs(urlsplit(location).query)["code"][0]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
        }
        if sent:
            data["code_verifier"] = sent
        resp = requests.post(token_url(server), data=data, timeout=10)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] in ("invalid_grant", "invalid_request")


# --- grants a client may not use --------------------------------------------------------


def test_disallowed_grants_are_refused(server: Server) -> None:
    client = register(server, "authorization_code")
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid")
    person = make_person(server)
    with pytest.raises(OAuthError) as refused:
        oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD)
    assert refused.value.error == "unauthorized_client"
    with pytest.raises(OAuthError) as refused:
        oauth.fetch_token(token_url(server), grant_type="client_credentials")
    assert refused.value.error == "unauthorized_client"

    implicit = OAuth2Session(client["client_id"], redirect_uri=REDIRECT, scope="openid")
    url, _ = implicit.create_authorization_url(authorize_url(server), response_type="token")
    page = Browser(server).open(url)
    assert page.status_code == 302
    assert "error=unauthorized_client" in page.headers["Location"]


def test_implicit_when_allowed(server: Server) -> None:
    client = register(server, "implicit", public=True)
    person = make_person(server)
    oauth = OAuth2Session(client["client_id"], redirect_uri=REDIRECT, scope="openid email")
    url, state = oauth.create_authorization_url(
        authorize_url(server), response_type="id_token token", nonce="n-implicit"
    )
    location = Browser(server).authorize(url, person)
    fragment = parse_qs(urlsplit(location).fragment)
    assert fragment["state"] == [state] and "code" not in fragment
    claims = id_claims(server, fragment["id_token"][0], client["client_id"])
    assert claims["nonce"] == "n-implicit" and claims["email"] == person.email
    assert user_with(server, fragment["access_token"][0]).status_code == 200


# --- password, client credentials, refresh, revocation, introspection -------------------


def test_password_grant_and_refresh_rotation(server: Server) -> None:
    client = register(server, "password", "refresh_token")
    person = make_person(server)
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid email")
    first = dict(oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD))
    assert user_with(server, first["access_token"]).json()["id"] == person.id

    with pytest.raises(OAuthError) as wrong:
        oauth.fetch_token(token_url(server), username=person.username, password="not it at all")
    assert wrong.value.error == "invalid_grant"

    second = dict(oauth.refresh_token(token_url(server), refresh_token=first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert user_with(server, first["access_token"]).status_code == 401  # rotated out
    assert user_with(server, second["access_token"]).status_code == 200

    # Replaying the spent refresh token fails, and kills the grant it came from.
    with pytest.raises(OAuthError) as replay:
        oauth.refresh_token(token_url(server), refresh_token=first["refresh_token"])
    assert replay.value.error == "invalid_grant"
    assert user_with(server, second["access_token"]).status_code == 401
    with pytest.raises(OAuthError):
        oauth.refresh_token(token_url(server), refresh_token=second["refresh_token"])


def test_client_credentials_introspection_and_revocation(server: Server) -> None:
    client = register(server, "client_credentials", scopes="profile")
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="profile")
    token = dict(oauth.fetch_token(token_url(server), grant_type="client_credentials"))
    assert "refresh_token" not in token
    # It acts for no person: refused on user operations.
    assert user_with(server, token["access_token"]).status_code == 401

    auth = (client["client_id"], client["client_secret"])
    url = f"{server.url}/v1/oauth/introspect"
    seen = requests.post(url, data={"token": token["access_token"]}, auth=auth, timeout=10)
    assert seen.json()["active"] is True and seen.json()["client_id"] == client["client_id"]
    other = register(server, "client_credentials")
    foreign = requests.post(
        url,
        data={"token": token["access_token"]},
        auth=(other["client_id"], other["client_secret"]),
        timeout=10,
    )
    assert foreign.json() == {"active": False}

    oauth.revoke_token(f"{server.url}/v1/oauth/revoke", token["access_token"])
    after = requests.post(url, data={"token": token["access_token"]}, auth=auth, timeout=10)
    assert after.json() == {"active": False}
    bad_secret = requests.post(
        url, data={"token": "x"}, auth=(client["client_id"], "wrong"), timeout=10
    )
    assert bad_secret.status_code == 401


def test_revoking_a_refresh_token(server: Server) -> None:
    client = register(server, "password", "refresh_token")
    person = make_person(server)
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid")
    token = dict(oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD))
    oauth.revoke_token(
        f"{server.url}/v1/oauth/revoke", token["refresh_token"], token_type_hint="refresh_token"
    )
    assert user_with(server, token["access_token"]).status_code == 401
    with pytest.raises(OAuthError):
        oauth.refresh_token(token_url(server), refresh_token=token["refresh_token"])


# --- a password reset ends everything ---------------------------------------------------


def reset_password(server: Server, person: Person, new_password: str) -> None:
    url = server.url + "/v1/"
    sent = requests.post(
        url + "api-user-request-reset-password", json={"email": person.email}, timeout=10
    )
    assert sent.json() == {"success": True}
    folder = Path(server.env["RELATCH_MAIL_DIR"])
    code = None
    for _ in range(100):
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            with path.open("rb") as fh:
                msg = BytesParser(policy=policy.default).parse(fh)
            if msg["To"] == person.email and "reset code" in str(msg["Subject"]):
                found = CODE_LINE.search(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                code = found.group(1) if found else None
        if code:
            break
        time.sleep(0.1)
    assert code, "no reset mail"
    done = requests.post(
        url + "api-user-reset-password",
        json={"email": person.email, "code": code, "newPassword": new_password},
        timeout=10,
    )
    assert done.json() == {"success": True}, done.text
    person.password = new_password


def test_password_reset_revokes_tokens_and_sign_in(server: Server) -> None:
    client = register(server, "authorization_code", "password", "refresh_token")
    person = make_person(server)
    browser = Browser(server)
    code_token = code_flow_tokens(server, client, person, browser)
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid")
    pw_token = dict(
        oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD)
    )
    for tok in (code_token, pw_token):
        assert user_with(server, tok["access_token"]).status_code == 200

    reset_password(server, person, "a completely new passphrase")

    for tok in (code_token, pw_token):
        assert user_with(server, tok["access_token"]).status_code == 401
        with pytest.raises(OAuthError):
            oauth.refresh_token(token_url(server), refresh_token=tok["refresh_token"])
    # The sign-in cookie died too: the authorize page asks for the password again.
    session = OAuth2Session(client["client_id"], client["client_secret"], redirect_uri=REDIRECT)
    url, _ = session.create_authorization_url(authorize_url(server))
    assert 'name="password"' in browser.open(url).text


# --- a second factor --------------------------------------------------------------------


def test_totp_is_required_by_password_grant_and_sign_in(server: Server) -> None:
    person = make_person(server)
    jwt_token = requests.post(
        f"{server.url}/v1/api-login",
        json={"username": person.username, "password": PASSWORD},
        timeout=10,
    ).json()["token"]
    headers = {"x-jwt-token": jwt_token}
    mfa = f"{server.url}/v1/api/user/mfa/totp"
    key = requests.post(f"{mfa}/create-key", headers=headers, timeout=10).json()["key"]
    totp = pyotp.TOTP(key)
    enabled = requests.post(
        f"{mfa}/set-key", json={"key": key, "totpToken": totp.now()}, headers=headers, timeout=10
    )
    assert enabled.json()["success"] is True, enabled.text

    client = register(server, "authorization_code", "password")
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid")
    with pytest.raises(OAuthError) as needed:
        oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD)
    assert needed.value.error == "invalid_grant"
    assert "ERR_TOTP_TOKEN IS REQUIRED" in str(needed.value.description)

    # The sign-in page asks for the code after the password.
    session = OAuth2Session(
        client["client_id"], client["client_secret"], scope="openid", redirect_uri=REDIRECT
    )
    url, _ = session.create_authorization_url(authorize_url(server))
    browser = Browser(server)
    page = browser.submit(browser.open(url), username=person.username, password=PASSWORD)
    assert 'name="totpToken"' in page.text and 'autocomplete="one-time-code"' in page.text
    page = browser.submit(page, password=PASSWORD, totpToken="000000")
    assert 'name="totpToken"' in page.text  # wrong code: still not signed in
    # The next step's token (within the accepted drift): the set-key token's step is spent.
    page = browser.submit(page, password=PASSWORD, totpToken=totp.at(int(time.time()) + 30))
    assert 'name="decision"' in page.text, page.text


# --- signing-key rotation ---------------------------------------------------------------


def test_key_rotation_keeps_old_id_tokens_verifiable(server: Server) -> None:
    client = register(server, "authorization_code")
    person = make_person(server)
    browser = Browser(server)
    before = code_flow_tokens(server, client, person, browser)
    old_kid = jwt.decode(before["id_token"], jwks(server)).header["kid"]

    done = server.cli("oauth-key", "rotate")
    assert done.returncode == 0, done.stderr
    new_kid = json.loads(done.stdout)["kid"]
    assert new_kid != old_kid

    # The old key is still published: the ID token issued before the rotation verifies.
    assert id_claims(server, before["id_token"], client["client_id"])["sub"] == str(person.id)
    after = code_flow_tokens(server, client, person, browser)
    assert jwt.decode(after["id_token"], jwks(server)).header["kid"] == new_kid


# --- credential management needs a recent sign-in (sudo mode) ---------------------------


def test_bearer_tokens_cannot_change_sign_in_methods(server: Server) -> None:
    # A third party's token (or a stolen one) must not mint an API key or plant a TOTP key
    # that outlives it (ASVS 5.0 7.5.1): only a fresh session JWT may.
    client = register(server, "authorization_code", "password")
    person = make_person(server)
    code_token = code_flow_tokens(server, client, person, Browser(server))
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope="openid")
    pw_token = dict(
        oauth.fetch_token(token_url(server), username=person.username, password=PASSWORD)
    )
    guarded = [
        ("post", "/v1/api/user/apikeys", {"name": "from a bearer"}),
        ("post", "/v1/api/user/mfa/totp/create-key", None),
        ("delete", "/v1/api/user/apikeys/1", None),
    ]
    for tok in (code_token, pw_token):
        assert user_with(server, tok["access_token"]).status_code == 200
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        for method, path, body in guarded:
            resp = requests.request(
                method, f"{server.url}{path}", json=body, headers=headers, timeout=10
            )
            assert resp.status_code == 401, (path, resp.text)
            assert resp.json() == {
                "success": False,
                "error": "Sign in again (with your password) to change your sign-in methods",
            }
    fresh = requests.post(
        f"{server.url}/v1/api-login",
        json={"username": person.username, "password": PASSWORD},
        timeout=10,
    ).json()["token"]
    made = requests.post(
        f"{server.url}/v1/api/user/apikeys",
        json={"name": "after signing in"},
        headers={"x-jwt-token": fresh},
        timeout=10,
    )
    assert made.json()["success"] is True, made.text
