"""Whatever a client sends: a clear error in the contract's shape, never a 5xx."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.services.context import Services
from relatch.storage.models import OutboxMessage, ResetRequest, User
from relatch.storage.models_audit import AuditEvent
from relatch.storage.models_auth import ApiKey

OPERATIONS = [
    "api-user-reset-password",
    "api-user-request-reset-password",
    "api-user-verify-reset-password-code",
    "api-user-create",
    "api-login",
]
JSON = {"content-type": "application/json"}


def assert_failure(resp: object, status: int, contains: str = "") -> None:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert contains in body["error"]


@pytest.mark.parametrize("path", OPERATIONS)
def test_not_json(client: TestClient, path: str) -> None:
    resp = client.post(f"/v1/{path}", content=b"{not json", headers=JSON)
    assert_failure(resp, 400, "not valid JSON")


@pytest.mark.parametrize("path", OPERATIONS)
def test_not_an_object(client: TestClient, path: str) -> None:
    assert_failure(client.post(f"/v1/{path}", json=[1, 2]), 400)
    assert_failure(client.post(f"/v1/{path}", json="text"), 400)


@pytest.mark.parametrize("path", OPERATIONS)
def test_empty_body(client: TestClient, path: str) -> None:
    assert_failure(client.post(f"/v1/{path}", content=b"", headers=JSON), 400)


def test_missing_field_named(client: TestClient) -> None:
    resp = client.post("/v1/api-user-reset-password", json={"email": "a@example.com"})
    assert_failure(resp, 400, "Missing field 'code'")


def test_wrong_type_named(client: TestClient) -> None:
    body = {"email": "a@example.com", "code": 12345678, "newPassword": "x" * 10}
    assert_failure(client.post("/v1/api-user-reset-password", json=body), 400, "'code'")
    body = {"name": "n", "username": "abcd", "email": "a@example.com", "privacyPolicy": "yes"}
    assert_failure(client.post("/v1/api-user-create", json=body), 400, "'privacyPolicy'")


def test_oversize_body(client: TestClient) -> None:
    big = {"email": "a@example.com", "padding": "x" * (70 * 1024)}
    assert_failure(client.post("/v1/api-user-request-reset-password", json=big), 400, "larger")


def test_malformed_address_is_a_handled_outcome(client: TestClient) -> None:
    resp = client.post("/v1/api-user-request-reset-password", json={"email": "not an address"})
    assert_failure(resp, 200, "e-mail")


def test_error_never_echoes_the_submitted_secret(client: TestClient) -> None:
    secret = "S3cret-Value-Never-Logged"
    body = {"email": "a@example.com", "code": "ABCD-EFGH", "newPassword": 1234}
    resp = client.post("/v1/api-user-reset-password", json={**body, "code": [secret]})
    assert_failure(resp, 400)
    assert secret not in resp.text


def test_unknown_path_and_method(client: TestClient) -> None:
    assert_failure(client.get("/v1/nowhere"), 404)
    assert_failure(client.get("/v1/api-user-reset-password"), 405)


def test_unicode_and_huge_strings_are_refused(client: TestClient) -> None:
    """NUL, lone surrogates and strings past their maximum: 400, each field named."""
    resp = client.post(
        "/v1/api-user-reset-password",
        content=b'{"email": "\\u0000@x.y", "code": "\\u00ff\\u00ff", "newPassword": "p"}',
        headers=JSON,
    )
    assert_failure(resp, 400, "'email'")
    body = {"email": "\udcff" * 3, "code": "\x00" * 100, "newPassword": "\u00fc" * 5000}
    resp = post_json(client, "api-user-reset-password", body)
    assert_failure(resp, 400)
    for field in ("email", "code", "newPassword"):
        assert f"'{field}'" in resp.json()["error"]


def test_extra_edge_impulse_fields_ignored(client: TestClient) -> None:
    body = {
        "name": "Jan",
        "username": "janjongboom",
        "email": "jan@example.com",
        "privacyPolicy": True,
        "password": "a fine passphrase",
        "turnstileResponse": "x",
        "utmParams": [{"utm_source": "x"}],
        "jobTitle": "Engineer",
        "companyName": "ACME",
        "sessionId": "s",
        "somethingNew": {"nested": True},
    }
    resp = client.post("/v1/api-user-create", json=body)
    assert resp.status_code == 200
    assert resp.json()["success"] is True
    assert isinstance(resp.json()["id"], int)


# Text no field can hold (issue 8, section 3): each was a 500 on one database or both ----

JUNK_TAIL = "x" * 257
CREATE = {
    "name": "Ada Lovelace",
    "username": "adalovelace",
    "email": "ada@example.com",
    "privacyPolicy": True,
    "password": "correct horse battery",
}


def post_json(client: TestClient, path: str, body: dict[str, Any], token: str = "") -> Any:
    """`body` as a JSON encoder sends it: a lone surrogate as its escape (`"\\ud800"`)."""
    headers = {**JSON, **({"x-jwt-token": token} if token else {})}
    return client.post(f"/v1/{path}", content=json.dumps(body).encode(), headers=headers)


def stored(svc: Services) -> dict[str, int]:
    """Row counts of everything a request could leave behind."""
    tables = (User, ApiKey, AuditEvent, ResetRequest, OutboxMessage)
    with svc.sessions() as s:
        return {t.__name__: s.scalar(select(func.count()).select_from(t)) or 0 for t in tables}


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


ANONYMOUS = [
    ("api-user-request-reset-password", {"email": "a\ud800@example.com"}, "email"),
    (
        "api-user-verify-reset-password-code",
        {"email": "a\ud800@example.com", "code": "ABCD-EFGH"},
        "email",
    ),
    (
        "api-user-reset-password",
        {"email": "a\ud800@example.com", "code": "ABCD-EFGH", "newPassword": "a fine passphrase"},
        "email",
    ),
    ("api-login", {"username": "user\ud800", "password": "correct horse battery"}, "username"),
    ("api-login", {"username": "user0001", "password": "correct\ud800horse"}, "password"),
    ("api-login", {"username": "user\x000001", "password": "correct horse battery"}, "username"),
    ("api-login", {"username": "user0001\n", "password": "correct horse battery"}, "username"),
    ("api-user-create", {**CREATE, "name": "Ada\ud800"}, "name"),
    ("api-user-create", {**CREATE, "jobTitle": "\ud800"}, "jobTitle"),
    ("api-user-create", {**CREATE, "password": "correct\ud800horse battery"}, "password"),
    ("api-user-create", {**CREATE, "name": "Ada\x00"}, "name"),
    ("api-user-create", {**CREATE, "jobTitle": "Engineer\x00"}, "jobTitle"),
    ("api-user-create", {**CREATE, "jobTitle": JUNK_TAIL}, "jobTitle"),
    ("api-user-create", {**CREATE, "companyName": JUNK_TAIL}, "companyName"),
    ("api-user-create", {**CREATE, "name": "x" * 257}, "name"),
    ("api-user-create", {**CREATE, "password": "correct\x00horse battery"}, "password"),
    # `$` of the Edge Impulse rule also matched before a final newline: this was stored.
    ("api-user-create", {**CREATE, "username": "adalovelace\n"}, "username"),
]


@pytest.mark.parametrize(("path", "body", "field"), ANONYMOUS)
def test_unstorable_text_is_400_and_leaves_nothing(
    svc: Services,
    client: TestClient,
    make_account: Any,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    owner = make_account()  # user0001, "correct horse battery"
    before = stored(svc)
    resp = post_json(client, path, body)
    assert_failure(resp, 400, f"'{field}'")
    assert json.dumps(body[field])[1:-1] not in resp.text  # never echoed
    assert stored(svc) == before
    no_errors_logged(caplog)
    # The owner is not kept out by it.
    assert login_ok(client, owner.username, owner.password)


def login_ok(client: TestClient, username: str, password: str) -> bool:
    resp = client.post("/v1/api-login", json={"username": username, "password": password})
    return resp.status_code == 200 and resp.json()["success"] is True


SIGNED_IN = [
    ("api/user/apikeys", {"name": "key\ud800"}, "name"),
    ("api/user/apikeys", {"name": "key\x00"}, "name"),
    ("api/user/apikeys", {"name": "key\x1b[31m"}, "name"),
    ("api/user/apikeys", {"name": "k" * 201}, "name"),
    (
        "api/user/change-password",
        {"currentPassword": "correct\ud800", "newPassword": "a brand new passphrase"},
        "currentPassword",
    ),
    (
        "api/user/change-password",
        {"currentPassword": "correct horse battery", "newPassword": "brand\ud800new phrase"},
        "newPassword",
    ),
    (
        "api/user/change-password",
        {"currentPassword": "correct horse battery", "newPassword": "brand\x00new phrase"},
        "newPassword",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), SIGNED_IN)
def test_unstorable_text_signed_in_is_400(
    svc: Services,
    client: TestClient,
    make_account: Any,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    owner = make_account()
    login = {"username": owner.username, "password": owner.password}
    token = client.post("/v1/api-login", json=login).json()["token"]
    client.cookies.clear()
    before = stored(svc)
    resp = post_json(client, path, body, token)
    assert_failure(resp, 400, f"'{field}'")
    assert stored(svc) == before
    no_errors_logged(caplog)
    assert client.get("/v1/api/user", headers={"x-jwt-token": token}).status_code == 200
    assert login_ok(client, owner.username, owner.password)  # the password did not change


def test_legitimate_text_still_accepted(client: TestClient, make_account: Any) -> None:
    """The owner's side: accents, scripts, emoji, a 256-character title and a password with
    a tab and any Unicode are all still fine."""
    password = "pass\tw\u00f6rd \u00fcn\u00efc\u00f6d\u00e9 \U0001f511"
    body = {
        **CREATE,
        "name": "Jos\u00e9 \u00d1and\u00fa \u0645\u062d\u0645\u062f \U0001f600",
        "jobTitle": "t" * 256,
        "companyName": "ACME \u2014 \u6771\u4eac",
        "password": password,
    }
    resp = post_json(client, "api-user-create", body)
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    assert login_ok(client, "adalovelace", password)


@pytest.mark.parametrize("token", ["%C2%B2.abc", "%D9%A3.abc", "1%00.abc", "%00.%00"])
def test_not_me_token_with_non_ascii_digits(
    client: TestClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    """`"²".isdigit()` is true and `int("²")` fails: was a 500 for any stranger."""
    resp = client.get(f"/not-me?token={token}")
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("text/html")
    no_errors_logged(caplog)
