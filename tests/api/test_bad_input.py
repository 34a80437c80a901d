"""Whatever a client sends: a clear error in the contract's shape, never a 5xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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


def test_unicode_and_huge_strings_are_handled(client: TestClient) -> None:
    body = {"email": "\udcff" * 3, "code": "\x00" * 100, "newPassword": "ü" * 2000}
    resp = client.post(
        "/v1/api-user-reset-password",
        content=b'{"email": "\\u0000@x.y", "code": "\\u00ff\\u00ff", "newPassword": "p"}',
        headers=JSON,
    )
    assert resp.status_code == 200
    assert resp.json()["success"] is False
    assert body  # the literal above is what a fuzzer would send; both forms must not crash


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
