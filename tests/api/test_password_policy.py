"""The policy's refusals, each with its message, on createUser, resetPassword and
changePasswordCurrentUser alike (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Mailbox
from tests.helpers.api import login, post, request_code

USERNAME = "marigold.finch"
EMAIL = "goldie.wren+shop@example.com"
PASSWORD = "quiet lantern harbour"

# (new password, part of the message that says what to change)
REFUSALS = [
    ("tiny", "too short: use at least 8 characters"),
    ("x" * 1025, "too long: use at most 1024 characters"),
    ("Password123", "too common"),
    ("iloveyou", "too common"),
    ("Marigold.Finch rocks", "contains your username"),
    ("marigoldfinch!", "contains your username"),
    ("goldie.wren at noon", "part of your e-mail address before the @"),
    ("GoldieWren+Shop day", "part of your e-mail address before the @"),
]

Attempt = Callable[[str], dict[str, Any]]


def _create(client: TestClient, password: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Marigold",
        "username": fields.get("username", USERNAME),
        "email": fields.get("email", EMAIL),
        "privacyPolicy": True,
        "password": password,
    }
    return post(client, "api-user-create", body)  # type: ignore[no-any-return]


@pytest.fixture(params=["createUser", "resetPassword", "changePasswordCurrentUser"])
def attempt(request: pytest.FixtureRequest, client: TestClient, mailbox: Mailbox) -> Attempt:
    """Set a password through one of the three operations; returns the JSON answer."""
    operation = request.param
    if operation == "createUser":
        return lambda pw: _create(client, pw)
    assert _create(client, PASSWORD)["success"] is True
    if operation == "resetPassword":
        code = request_code(client, mailbox, EMAIL)
        return lambda pw: post(
            client, "api-user-reset-password", {"email": EMAIL, "code": code, "newPassword": pw}
        )
    token = login(client, USERNAME, PASSWORD)["token"]

    def change(pw: str) -> dict[str, Any]:
        resp = client.post(
            "/v1/api/user/change-password",
            json={"currentPassword": PASSWORD, "newPassword": pw},
            headers={"x-jwt-token": token},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    return change


@pytest.mark.parametrize(("password", "message"), REFUSALS, ids=[m for _, m in REFUSALS])
def test_each_refusal_says_what_to_change(attempt: Attempt, password: str, message: str) -> None:
    result = attempt(password)
    assert result["success"] is False
    assert message in result["error"]
    assert set(result) == {"success", "error"}


def test_a_good_password_after_refusals_is_accepted(attempt: Attempt) -> None:
    for password, _ in REFUSALS[:3]:
        assert attempt(password)["success"] is False
    assert attempt("amber kettle on the moor")["success"] is True


def test_current_password_refused_on_reset_and_change(client: TestClient, mailbox: Mailbox) -> None:
    assert _create(client, PASSWORD)["success"] is True
    code = request_code(client, mailbox, EMAIL)
    body = {"email": EMAIL, "code": code, "newPassword": PASSWORD}
    same = post(client, "api-user-reset-password", body)
    assert same == {
        "success": False,
        "error": "Password is the same as your current one: choose a password you have "
        "not used here",
    }
    # The refusal gave the try back: the code still works with a different password.
    body["newPassword"] = "amber kettle on the moor"
    assert post(client, "api-user-reset-password", body) == {"success": True}
    token = login(client, USERNAME, "amber kettle on the moor")["token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={
            "currentPassword": "amber kettle on the moor",
            "newPassword": "Amber kettle on the moor",
        },
        headers={"x-jwt-token": token},
    )
    # Case matters for equality (only the common list is case-insensitive): this is new.
    assert resp.json() == {"success": True}
    token = resp.headers["x-jwt-token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={
            "currentPassword": "Amber kettle on the moor",
            "newPassword": "Amber kettle on the moor",
        },
        headers={"x-jwt-token": token},
    )
    assert resp.json()["success"] is False
    assert "same as your current one" in resp.json()["error"]
