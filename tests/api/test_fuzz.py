"""Property-based fuzzing of everything a client can send: never a 5xx, always the contract.

The OpenAPI operations are fuzzed by Schemathesis from the served document (positive and
negative data, anonymous and signed in); the surfaces left out of that document (the web
forms and the OAuth2 endpoints) get random form bodies from Hypothesis strategies.

Every test runs on SQLite and PostgreSQL: the engines refuse different text (PostgreSQL
refuses NUL, which SQLite stores), and a 500 found only on one of them was missed while this
ran on SQLite alone. Besides the status, every test fails on an ERROR log line (a swallowed
exception is a bug too). Hostile text (NUL, lone surrogates, C0/C1 controls, line
separators, bidi controls, strings just over each maximum) is drawn on purpose, in every
string field of every request body and every form field. Hypothesis runs derandomized (same
examples on every run, so CI is reproducible) with a bounded number of examples per
operation, no deadline, and no shrinking budget beyond the default phases.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from relatch.app import build, create_app
from relatch.core import text
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import GRANT_TYPES, SCOPES
from tests import conftest

# Bounded for `make test`; RELATCH_FUZZ_EXAMPLES=500 digs deeper by hand.
MAX_EXAMPLES = int(os.environ.get("RELATCH_FUZZ_EXAMPLES", "20"))
FUZZ = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,  # no example database: every run is the same run
    # Shrinking stays on (a minimal failing input is the bug report) but cannot run long.
    phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    report_multiple_bugs=False,
)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return conftest.test_settings(
        tmp_path,
        db_url,
        # The fuzzer sends hundreds of requests from one peer: with the default reset
        # limits it would only ever see 429 after the first few, never the code behind them.
        limit_reset_per_address="off",
        limit_reset_per_ip="off",
        limit_failures_per_account="off",
        limit_failures_per_ip="off",
        limit_signup_per_ip="off",
        # Authlib refuses plain http except on loopback; the public URL is what it judges.
        public_url="https://relatch.test",
    )


def _document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        svc = build(conftest.test_settings(Path(tmp), "sqlite://"))
        try:
            return create_app(svc=svc).openapi()
        finally:
            svc.close()


DOCUMENT = _document()


def _operations() -> list[tuple[str, str, bool, bool]]:
    """(method, path, public, has_input) of every operation the served document lists."""
    return [
        (method.upper(), path, op.get("security") == [], _has_input(op))
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
    ]


def _has_input(op: dict[str, Any]) -> bool:
    return bool(op.get("requestBody") or op.get("parameters"))


OPERATIONS = _operations()


@dataclass(frozen=True)
class JsonBody:
    """An operation's JSON request body, as the served document describes it."""

    method: str
    path: str
    public: bool
    properties: dict[str, dict[str, Any]]
    required: frozenset[str]


def _json_bodies() -> list[JsonBody]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            name = content["schema"]["$ref"].rsplit("/", 1)[1]
            schema = DOCUMENT["components"]["schemas"][name]
            found.append(
                JsonBody(
                    method.upper(),
                    "/v1" + path,
                    op.get("security") == [],
                    schema["properties"],
                    frozenset(schema.get("required", ())),
                )
            )
    return found


JSON_BODIES = _json_bodies()


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An exception the app caught and logged is a bug even when the answer is a 4xx."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "; ".join(f"{r.name}: {r.getMessage()}" for r in errors)
    caplog.clear()


def _cases() -> Iterator[Any]:
    for method, path, public, has_input in OPERATIONS:
        # Negative data needs something to break: an operation without body or parameters
        # has none (its credentials are fuzzed by the anonymous positive run).
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])
        for mode in modes:
            for signed_in in (False, True) if not public else (False,):
                who = "signed-in" if signed_in else "anonymous"
                yield pytest.param(
                    method, path, mode, signed_in, id=f"{method} {path} {mode} {who}"
                )


def assert_contract_shape(status: int, body: Any) -> None:
    """Every answer of the API is `{"success": bool}` with a string `error` when false."""
    assert isinstance(body, dict), f"{status}: not a JSON object: {body!r}"
    assert isinstance(body.get("success"), bool), f"{status}: no boolean success: {body!r}"
    if body["success"] is False:
        assert isinstance(body.get("error"), str), f"{status}: no string error: {body!r}"
    if status >= 400:
        assert body["success"] is False, f"{status} with success true: {body!r}"


@pytest.fixture
def schema(svc: Services) -> OpenApiSchema:
    return schemathesis.openapi.from_asgi("/v1/openapi.json", create_app(svc=svc))


def _sign_in(client: TestClient, make_account: Any) -> dict[str, str]:
    account = make_account()
    resp = client.post(
        "/v1/api-login", json={"username": account.username, "password": account.password}
    )
    token = resp.json()["token"]
    assert isinstance(token, str)
    return {"x-jwt-token": token}


@pytest.mark.parametrize(("method", "path", "mode", "signed_in"), list(_cases()))
def test_openapi_operation(
    schema: OpenApiSchema,
    client: TestClient,
    make_account: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    mode: GenerationMode,
    signed_in: bool,
) -> None:
    headers: dict[str, str] = {}
    if signed_in:
        headers = _sign_in(client, make_account)
        # Only our valid token: a generated x-api-key beside it would be a bad credential
        # (401, rightly) and hide the operation itself. Anonymous runs keep the generated,
        # random credentials of every scheme: they must all answer 401, never a 5xx.
        schema.config.generation.update(with_security_parameters=False)
    operation = schema[path][method]

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
        body = response.json()
        assert_contract_shape(response.status_code, body)
        checks = [content_type_conformance, status_code_conformance]
        # A handled failure is 200 with GenericApiResponse (the contract, and what Edge
        # Impulse itself answers) although the documented 200 schema of an operation may
        # require its success fields (UserSetTotpMfaKeyResponse.recoveryCodes): the shape
        # check above covers those; every other answer must match its documented schema.
        if body["success"] is True or response.status_code != 200:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks, headers=headers)
        assert_no_error_logged(caplog)

    run()


# Hostile text in every string field of every JSON body ------------------------------------

# Characters each a 500 or an injection somewhere once (issue 8): NUL (PostgreSQL), lone
# surrogates (no UTF-8 encoding), C0 and C1 controls (CR/LF into mails, ESC and U+009B
# into terminals), Unicode line separators and bidi overrides.
HOSTILE_CHARS = st.one_of(
    st.sampled_from(
        (
            *("\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\r", "\n", "\t", "\x1b"),
            *("\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066"),
        )
    ),
    st.characters(min_codepoint=0, max_codepoint=0x9F),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
# Each of these was a 500 or an injection; every field gets each of them in every run.
DEADLY = ("\x00", "\ud800", "\udfff", "\r\n", "\x1b[31m", "\x9b", "\x85", "\u2028", "\u202e")
# Just over (and at) every maximum the schemas set, in 1-, 2- and 4-byte characters.
LENGTHS = (64, 65, 100, 101, 256, 257, 320, 321, 1024, 1025, 2048, 2049, 6000)
HOSTILE = st.one_of(
    st.text(st.one_of(HOSTILE_CHARS, st.characters()), min_size=1, max_size=30),
    st.builds(
        lambda ch, n: ch * n,
        st.one_of(st.sampled_from(["x", "\u00e9", "\U0001f600"]), HOSTILE_CHARS),
        st.sampled_from(LENGTHS),
    ),
    # A valid-looking value with one hostile character inside or around it.
    st.builds(
        lambda base, ch, at: base[:at] + ch + base[at:],
        st.sampled_from(["user1@example.com", "Ada Lovelace", "correct horse battery"]),
        HOSTILE_CHARS,
        st.integers(0, 21),
    ),
)


def test_every_request_string_is_bounded() -> None:
    """Each string field of each request body has a maximum length in the document."""
    unbounded = [
        f"{body.path}.{name}"
        for body in JSON_BODIES
        for name, prop in body.properties.items()
        if prop.get("type") == "string" and "enum" not in prop and "maxLength" not in prop
    ]
    assert unbounded == []


@dataclass
class Session:
    password: str
    token: str


def _valid(name: str, n: int, account: Any, session: Session) -> Any:
    """A value of field `name` that gets past the first checks (unique where it must be)."""
    values: dict[str, Any] = {
        "email": account.email,
        "username": account.username,
        "password": session.password,
        "currentPassword": session.password,
        "newPassword": f"another fine passphrase {n}",
        "code": "ABCD-EFGH",
        "name": "Ada Lovelace",
        "privacyPolicy": True,
        "totpToken": "123456",
        "key": "JBSWY3DPEHPK3PXP",
    }
    return values.get(name, "x")


@pytest.mark.parametrize("body", JSON_BODIES, ids=[f"{b.method} {b.path}" for b in JSON_BODIES])
def test_hostile_text_in_every_field(
    client: TestClient, make_account: Any, caplog: pytest.LogCaptureFixture, body: JsonBody
) -> None:
    """One field hostile, the others valid: 400 when the field refuses the text, never a
    5xx, never an ERROR log line, and the error never quotes the text back."""
    account = make_account()
    login = {"username": account.username, "password": account.password}
    session = Session(account.password, client.post("/v1/api-login", json=login).json()["token"])
    fields = sorted(name for name, prop in body.properties.items() if prop.get("type") == "string")
    counter = iter(range(1, 1_000_000))

    def send(field: str, value: str, with_optional: bool) -> None:
        n = next(counter)
        names = set(body.required) | ({*body.properties} if with_optional else set())
        payload = {name: _valid(name, n, account, session) for name in names}
        if body.path.endswith("/api-user-create"):  # a new account each time
            payload.update(username=f"fz{n:06d}", email=f"fz{n}@example.com")
        if body.method == "DELETE" and field != "password":
            # deleteCurrentUser would succeed and end the session the next requests need.
            payload["password"] = "not the password"
        payload[field] = value
        headers = {"content-type": "application/json"}
        if not body.public:
            headers["x-jwt-token"] = session.token
        client.cookies.clear()
        # ensure_ascii: a lone surrogate travels as its JSON escape ("\ud800"), as a
        # client's JSON encoder sends it.
        raw = json.dumps(payload).encode()
        response = client.request(body.method, body.path, content=raw, headers=headers)
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
        answer = response.json()
        assert_contract_shape(response.status_code, answer)
        prop = body.properties[field]
        secret = "password" in field.lower()
        allowed = text.is_secret(value) if secret else text.is_line(value)
        if not allowed or len(value) > prop.get("maxLength", len(value)):
            assert response.status_code == 400, f"{field}: {response.text[:300]}"
        if len(value) >= 8 and not answer["success"]:
            assert json.dumps(value)[1:-1] not in response.text
        if body.path.endswith("/change-password") and answer["success"]:
            # The password changed: carry on with the new one and the fresh session.
            session.password = payload["newPassword"]
            session.token = response.headers.get("x-jwt-token", session.token)
        assert_no_error_logged(caplog)

    # Every field, every deadly character inside an otherwise valid value, and one
    # character over its maximum: always, whatever Hypothesis draws below.
    for field in fields:
        base = str(_valid(field, 0, account, session))
        for ch in DEADLY:
            send(field, base[:2] + ch + base[2:], with_optional=True)
        send(field, "x" * (body.properties[field].get("maxLength", 6000) + 1), False)

    @FUZZ
    @given(field=st.sampled_from(fields), value=HOSTILE, with_optional=st.booleans())
    def run(field: str, value: str, with_optional: bool) -> None:
        send(field, value, with_optional)

    run()


# The surfaces outside the OpenAPI document: web forms and the OAuth2 endpoints ----------

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PAGE_FIELDS = {
    "/reset-password/ask": ("email",),
    "/reset-password/new": ("email", "code", "newPassword", "newPasswordRepeat"),
    "/not-me": ("token",),
    "/account/sessions/end": ("session",),
    "/account/sessions/end-others": (),
    "/account/apps/revoke": ("app",),
    "/account/sign-in": ("username", "password", "totpToken", "next"),
    "/change-email/undo": ("token",),
}
OAUTH_FIELDS = (
    "grant_type",
    "client_id",
    "client_secret",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "username",
    "password",
    "scope",
    "token",
    "token_type_hint",
    "totpToken",
)
OAUTH_ENDPOINTS = ("/v1/oauth/token", "/v1/oauth/revoke", "/v1/oauth/introspect")
FORM = "application/x-www-form-urlencoded"

# Values that reach past the first check more often than random text does.
SPECIAL = (
    "",
    " ",
    "user1@example.com",
    "not an address",
    "ABCD-EFGH",
    "abcd efgh",
    "correct horse battery",
    "\x00",
    "%",
    "%zz",
    "+",
    "&=",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "😀" * 300,
    "x" * 3000,
    "authorization_code",
    "password",
    "client_credentials",
    "refresh_token",
    "implicit",
    "openid email profile",
    "access_token",
    "https://app.example/cb",
)
HEADER_CHARS = st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"])
TEXT = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    HOSTILE,
)


@dataclass
class Known:
    """Real values the fuzzer may pick, so that requests get past the first refusal."""

    csrf_cookie: str
    csrf_token: str
    values: dict[str, list[str]]
    basic: list[str]


@st.composite
def form_request(draw: st.DrawFn, fields: tuple[str, ...], known: Known) -> dict[str, Any]:
    """headers and raw body of a random form post: known and random fields, duplicates,
    real or forged CSRF, and sometimes a body that is not a well-formed form at all."""
    names = st.one_of(st.sampled_from((*fields, "csrf_token")), st.text(max_size=12))
    pairs: list[tuple[str, str]] = []
    for name in draw(st.lists(names, max_size=8)):
        pool = known.values.get(name, [])
        value = draw(st.sampled_from(pool) if pool and draw(st.booleans()) else TEXT)
        pairs.append((name, value))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["cookie"] = f"relatch_csrf={known.csrf_cookie}"
        if draw(st.booleans()):
            pairs.append(("csrf_token", known.csrf_token))
    if draw(st.booleans()):
        headers["authorization"] = draw(
            st.one_of(
                st.sampled_from(known.basic),
                st.text(HEADER_CHARS, max_size=30).map(lambda t: "Basic " + t),
                st.binary(max_size=30).map(lambda b: "Basic " + base64.b64encode(b).decode()),
            )
        )
    shape = draw(st.sampled_from(("form", "form", "multipart", "raw")))
    if shape == "form":
        body = urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
        headers["content-type"] = FORM
    elif shape == "multipart":
        boundary = "fuzzb0undary"
        parts = []
        for name, value in pairs:
            filename = '; filename="f.txt"' if draw(st.booleans()) else ""
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}'
                f"\r\n\r\n{value}\r\n"
            )
        text = "".join(parts) + (f"--{boundary}--\r\n" if draw(st.booleans()) else "")
        body = text.encode("utf-8", "surrogatepass")
        headers["content-type"] = draw(
            st.sampled_from((f"multipart/form-data; boundary={boundary}", "multipart/form-data"))
        )
    else:
        body = draw(st.binary(max_size=200))
        content_type = draw(
            st.sampled_from((FORM, "multipart/form-data; boundary=x", "application/json", ""))
        )
        if content_type:
            headers["content-type"] = content_type
    # Header bytes as a server receives them (UTF-8 beyond Latin-1 included); CR, LF and NUL
    # never reach the application (the HTTP parser refuses them), so they are not drawn.
    return {"headers": {k: v.encode() for k, v in headers.items()}, "content": body}


@pytest.fixture
def known(svc: Services, client: TestClient, make_account: Any) -> Known:
    account = make_account()
    page = client.get("/reset-password")
    match = CSRF_RE.search(page.text)
    assert match is not None
    cookie = client.cookies["relatch_csrf"]
    client.cookies.clear()
    app = store.create_client(
        svc, "Fuzz", ["https://app.example/cb"], list(GRANT_TYPES), list(SCOPES), False
    )
    assert app.client_secret is not None
    login = {"username": account.username, "password": account.password}
    token = client.post("/v1/api-login", json=login).json()["token"]
    basic = base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()
    return Known(
        csrf_cookie=cookie,
        csrf_token=match.group(1),
        values={
            "email": [account.email],
            "username": [account.username],
            "password": [account.password],
            "client_id": [app.client_id],
            "client_secret": [app.client_secret],
            "grant_type": list(GRANT_TYPES),
            "scope": [" ".join(SCOPES), "openid"],
            "redirect_uri": ["https://app.example/cb"],
            "token": [token],
        },
        basic=[f"Basic {basic}"],
    )


@pytest.mark.parametrize("path", [*PAGE_FIELDS, *OAUTH_ENDPOINTS])
def test_form_surface(
    client: TestClient, known: Known, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    oauth = path in OAUTH_ENDPOINTS
    fields = OAUTH_FIELDS if oauth else PAGE_FIELDS[path]

    @FUZZ
    @given(request=form_request(fields, known))
    def run(request: dict[str, Any]) -> None:
        client.cookies.clear()  # only the cookie this example chose
        response = client.post(path, **request)
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
        if oauth:
            # RFC 6749 answers: JSON, with `error` on a refusal.
            body = response.json()
            assert isinstance(body, dict)
            if response.status_code >= 400:
                assert isinstance(body.get("error"), str), body
        elif response.status_code != 303:
            # A page answers with a page, also to a body that is no form at all.
            assert response.headers["content-type"].startswith("text/html"), response.text
        assert_no_error_logged(caplog)

    run()


# Credentials: every scheme's header, with any bytes a client can put there ---------------

CREDENTIAL_HEADERS = ("x-api-key", "x-jwt-token", "authorization", "cookie")


@st.composite
def credentials(draw: st.DrawFn, known: Known) -> dict[str, bytes]:
    token = known.values["token"][0]
    value = st.one_of(
        st.sampled_from((token, token[:-2], token + "x", "Bearer " + token, "jwt=" + token)),
        st.sampled_from(("Bearer ", "Bearer", "bearer \u00e9", "jwt=", "jwt=\u00e9", "Basic ")),
        st.text(HEADER_CHARS, max_size=60),
        st.text(HEADER_CHARS, max_size=60).map(lambda t: "Bearer " + t),
        st.text(HEADER_CHARS, max_size=60).map(lambda t: "jwt=" + t),
    )
    names = draw(st.lists(st.sampled_from(CREDENTIAL_HEADERS), min_size=1, max_size=4))
    return {name: draw(value).encode() for name in names}


@pytest.mark.parametrize("path", ["/v1/api/user", "/v1/api/user/apikeys", "/v1/oauth/userinfo"])
def test_credentials(
    client: TestClient, known: Known, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    @FUZZ
    @given(headers=credentials(known))
    def run(headers: dict[str, bytes]) -> None:
        client.cookies.clear()
        response = client.get(path, headers=headers)
        assert response.status_code in (200, 401), f"{response.status_code}: {response.text}"
        if not path.startswith("/v1/oauth/"):
            assert_contract_shape(response.status_code, response.json())
        assert_no_error_logged(caplog)

    run()


# The authorize endpoint: its query string and its sign-in and consent forms --------------

AUTHORIZE_QUERY = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "max_age",
)
# Values that broke the authorize endpoint (issue 8): request text Authlib quoted into an
# error_description (`"`, `\`, non-ASCII), parameters over their column (a nonce of 257 on
# PostgreSQL), NUL, tokens asked for in the query, max_age that is no number.
AUTHORIZE_VALUES = {
    "redirect_uri": ["https://app.example/cb" + c for c in ('"', "\\", "\u00e9", "\x00", "")],
    "nonce": ["n" * 256, "n" * 257, "a\x00b", '\u00e9"\\'],
    "state": ["s" * 1024, "s" * 1025, "a\nb", '\u00e9"\\'],
    "response_mode": ["query", "fragment", "form_post", "\u00e9"],
    "max_age": ["0", "60", "\u00b2", "-1", "9" * 20],
}
AUTHORIZE_FORM = ("step", "username", "password", "totpToken", "decision")


@st.composite
def authorize_query(draw: st.DrawFn, known: Known) -> list[tuple[str, str]]:
    """Often a real client's request (to get past the client check), then parameters with
    values known to matter for that parameter, or any text."""
    pairs: list[tuple[str, str]] = []
    if draw(st.booleans()):
        pairs.append(("client_id", known.values["client_id"][0]))
        pairs.append(("response_type", draw(st.sampled_from(known.values["response_type"]))))
    for name in draw(st.lists(st.sampled_from(AUTHORIZE_QUERY), max_size=8)):
        pool = known.values.get(name, [])
        value = draw(st.sampled_from(pool) if pool and draw(st.booleans()) else TEXT)
        pairs.append((name, value))
    return pairs


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_authorize(
    client: TestClient, known: Known, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    known.values.update(
        response_type=["code", "token", "id_token", "id_token token", "code id_token"],
        step=["signin", "consent"],
        decision=["allow", "deny"],
        code_challenge_method=["S256", "plain"],
        prompt=["login", "none", "consent", "none login"],
        **AUTHORIZE_VALUES,
    )

    def check(response: Any) -> None:
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, errors
        if response.status_code == 302:
            # Tokens never travel in the query (Multiple Response Type Encoding Practices).
            sent = parse_qs(urlsplit(response.headers["location"]).query)
            assert "access_token" not in sent and "id_token" not in sent, sent

    # Every value of the alphabet above with a real client, before the random examples.
    for name, values in AUTHORIZE_VALUES.items():
        for value in values:
            for response_type in ("code", "id_token token"):
                caplog.clear()
                query = {
                    "client_id": known.values["client_id"][0],
                    "response_type": response_type,
                    "scope": "openid",
                    "nonce": "n",
                    name: value,
                }
                check(
                    client.request(
                        method, "/v1/oauth/authorize", params=query, follow_redirects=False
                    )
                )

    @FUZZ
    @given(query=authorize_query(known), request=form_request(AUTHORIZE_FORM, known))
    def run(query: list[tuple[str, str]], request: dict[str, Any]) -> None:
        client.cookies.clear()
        caplog.clear()
        url = "/v1/oauth/authorize?" + urlencode(query, errors="surrogatepass")
        if method == "GET":
            request = {"headers": request["headers"]}
        check(client.request(method, url, follow_redirects=False, **request))

    run()


SIGN_IN_FORMS = {
    "/v1/oauth/authorize": ("username", "password", "totpToken"),
    "/reset-password/ask": ("email",),
    "/reset-password/new": ("email", "code", "newPassword", "newPasswordRepeat"),
    "/not-me": ("token",),
    "/account/sessions/end": ("session",),
    "/account/apps/revoke": ("app",),
    "/account/sign-in": ("username", "password", "totpToken", "next"),
    "/change-email/undo": ("token",),
}


@pytest.mark.parametrize("path", SIGN_IN_FORMS)
def test_forms_with_hostile_text(
    client: TestClient, known: Known, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """Every form field hostile, with a valid CSRF field, so each example reaches the
    service (random forms rarely get that far: NUL in the OAuth sign-in username was a
    PostgreSQL 500 that they never found)."""
    fields = SIGN_IN_FORMS[path]
    query = {}
    if path == "/v1/oauth/authorize":
        query = {
            "client_id": known.values["client_id"][0],
            "response_type": "code",
            "redirect_uri": "https://app.example/cb",
            "scope": "openid",
        }

    valid = {
        "username": known.values["username"][0],
        "password": known.values["password"][0],
        "totpToken": "123456",
        "email": known.values["email"][0],
        "code": "ABCD-EFGH",
        "newPassword": "a brand new passphrase",
        "newPasswordRepeat": "a brand new passphrase",
        "token": "1.abcdef",
        "session": "no-such-session",
        "app": "no-such-app",
        "next": "/account/sessions",
    }
    # The sessions page acts only for a signed-in browser: its jwt cookie goes along.
    cookie = f"relatch_csrf={known.csrf_cookie}"
    if path.startswith("/account/"):
        cookie += f"; jwt={known.values['token'][0]}"

    def send(values: list[str]) -> None:
        client.cookies.clear()
        pairs = [*zip(fields, values, strict=True), ("csrf_token", known.csrf_token)]
        if path == "/v1/oauth/authorize":
            pairs.append(("step", "signin"))
        response = client.post(
            path,
            params=query,
            content=urlencode(pairs, errors="surrogatepass").encode(),
            headers={"content-type": FORM, "cookie": cookie},
            follow_redirects=False,
        )
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
        assert response.status_code != 403, "the CSRF field was refused: nothing was tested"
        assert response.status_code != 401, "not signed in: nothing was tested"
        assert_no_error_logged(caplog)

    for i in range(len(fields)):  # each field, each deadly character, the rest valid
        for ch in DEADLY:
            values = [valid[f] for f in fields]
            values[i] = values[i][:2] + ch + values[i][2:]
            send(values)

    @FUZZ
    @given(values=st.lists(st.one_of(HOSTILE, TEXT), min_size=len(fields), max_size=len(fields)))
    def run(values: list[str]) -> None:
        send(values)

    run()
