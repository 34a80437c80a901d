"""The reset flow through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.storage.models import ResetRequest
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import login, post, request_code

CODE_ERROR = "Invalid or expired reset code"


def test_whole_flow(client: TestClient, mailbox: Mailbox, make_account: Any) -> None:
    acct: Account = make_account()
    old = login(client, acct.username, acct.password)
    assert old["success"] is True
    code = request_code(client, mailbox, acct.email)
    assert post(
        client, "api-user-verify-reset-password-code", {"email": acct.email, "code": code}
    ) == {"success": True}
    result = post(
        client,
        "api-user-reset-password",
        {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"},
    )
    assert result == {"success": True}
    assert login(client, acct.username, acct.password) == {
        "success": False,
        "error": "Invalid username or password",
    }
    new = login(client, acct.email, "a brand new passphrase")
    assert new["success"] is True
    me = client.get("/v1/api/user", headers={"x-jwt-token": new["token"]})
    assert me.status_code == 200
    assert me.json()["email"] == acct.email
    assert me.json()["activated"] is True  # the code proved the address
    # Sessions from before the reset are revoked.
    stale = client.get("/v1/api/user", headers={"x-jwt-token": old["token"]})
    assert stale.status_code == 401
    assert stale.json() == {"success": False, "error": "Not authenticated"}
    # The "password changed" notice went out.
    mailbox.run_workers()
    subjects = [str(m["Subject"]) for m in mailbox.to(acct.email)]
    assert "Your Relatch password was changed" in subjects


def test_code_single_use(client: TestClient, mailbox: Mailbox, make_account: Any) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "first new password"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    body["newPassword"] = "second new password"
    assert post(client, "api-user-reset-password", body) == {"success": False, "error": CODE_ERROR}


def test_same_error_for_every_failure(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    unknown = post(
        client, "api-user-verify-reset-password-code", {"email": "nobody@example.com", "code": code}
    )
    bad = post(client, "api-user-verify-reset-password-code", {"email": acct.email, "code": wrong})
    clock.advance(601)
    expired = post(
        client, "api-user-verify-reset-password-code", {"email": acct.email, "code": code}
    )
    assert unknown == bad == expired == {"success": False, "error": CODE_ERROR}


def test_code_valid_at_ttl_boundary(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    clock.advance(599)
    body = {"email": acct.email, "code": code}
    assert post(client, "api-user-verify-reset-password-code", body)["success"] is True
    clock.advance(1)
    assert post(client, "api-user-verify-reset-password-code", body)["success"] is False


def test_code_accepted_in_any_case_without_hyphen(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    typed = code.replace("-", "").lower()
    body = {"email": acct.email.upper(), "code": typed, "newPassword": "another good password"}
    assert post(client, "api-user-reset-password", body) == {"success": True}


def test_new_request_invalidates_older_code(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    first = request_code(client, mailbox, acct.email)
    second = request_code(client, mailbox, acct.email)
    assert first != second
    body = {"email": acct.email, "code": first}
    assert post(client, "api-user-verify-reset-password-code", body)["success"] is False
    body["code"] = second
    assert post(client, "api-user-verify-reset-password-code", body)["success"] is True


def test_five_wrong_tries_kill_the_code(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    # Wrong tries, counted across verify and reset together.
    for i in range(5):
        path = "api-user-verify-reset-password-code" if i % 2 else "api-user-reset-password"
        body = {"email": acct.email, "code": wrong, "newPassword": "whatever password"}
        assert post(client, path, body)["success"] is False
    body = {"email": acct.email, "code": code}
    assert post(client, "api-user-verify-reset-password-code", body) == {
        "success": False,
        "error": CODE_ERROR,
    }


def test_fifth_try_still_counts(client: TestClient, mailbox: Mailbox, make_account: Any) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    for _ in range(4):
        body = {"email": acct.email, "code": wrong}
        assert post(client, "api-user-verify-reset-password-code", body)["success"] is False
    body = {"email": acct.email, "code": code, "newPassword": "the fifth try works"}
    assert post(client, "api-user-reset-password", body) == {"success": True}


def test_unknown_address_gets_success_and_no_mail(client: TestClient, mailbox: Mailbox) -> None:
    body = {"email": "ghost@example.com"}
    assert post(client, "api-user-request-reset-password", body) == {"success": True}
    mailbox.run_workers()
    assert mailbox.messages() == []


def test_short_password_refused_and_code_kept(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    code = request_code(client, mailbox, acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "short"}
    result = post(client, "api-user-reset-password", body)
    assert result["success"] is False
    assert "at least 8 characters" in result["error"]
    body["newPassword"] = "long enough now"
    assert post(client, "api-user-reset-password", body) == {"success": True}


def test_handled_requests_leave_no_address_behind(
    client: TestClient, mailbox: Mailbox, make_account: Any, svc: Any
) -> None:
    """Privacy and enumeration lists: a recorded request holds the typed address in clear
    until the worker has decided; after that only the audit trail remains (a keyed digest
    for an unknown address, pruned after the retention period)."""
    acct: Account = make_account()
    for email in (acct.email, "typo.or.probe@example.com"):
        assert post(client, "api-user-request-reset-password", {"email": email}) == {
            "success": True
        }
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ResetRequest)) == 2
    mailbox.run_workers()
    assert len(mailbox.to(acct.email)) == 1
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ResetRequest)) == 0
