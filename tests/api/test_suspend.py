"""Operator commands on an account (issue 11): `relatch user suspend` / `unsuspend`,
`relatch user staff [--revoke]`, `relatch user reset`. A suspended account cannot sign in
(only its right password hears why), no credential of it works (401), and it gets no reset
code while a reset request answers as always; staff see `suspended` and `suspensionReason`.
On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.services.context import Services
from relatch.settings import Settings
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.api import create_key, session_headers
from tests.helpers.audit import rows as audit_rows
from tests.helpers.lifecycle import BY_ID, LOGIN_FAILED, ME, unsent_mail, with_totp
from tests.helpers.recent_sign_in import bearer_token

SUSPENDED = {
    "success": False,
    "error": "This account is suspended; contact the service's operators",
}
REASON = "Chargeback fraud, ticket 4242"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def user_cmd(cli: CliRunner, *args: str) -> Any:
    return cli.invoke(cli_app, ["user", *args])


def sign_in(client: TestClient, acct: Account, password: str | None = None) -> Any:
    body = {"username": acct.username, "password": password or acct.password}
    return client.post("/v1/api-login", json=body).json()


def test_a_suspended_account_cannot_sign_in_or_use_any_credential(
    client: TestClient, make_account: Any, svc: Services, cli: CliRunner, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    session = session_headers(client, acct)
    key = {"x-api-key": create_key(client, session)["apiKey"]}
    bearer = {"authorization": f"Bearer {bearer_token(svc, client, acct)}"}
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)  # a live reset code before the suspension
    client.cookies.clear()

    done = user_cmd(cli, "suspend", "--email", acct.email, "--reason", REASON)
    assert done.exit_code == 0, done.output
    assert done.output.strip() == f"user {acct.id} suspended"
    for creds in (session, key, bearer):
        resp = client.get(ME, headers=creds)
        assert (resp.status_code, resp.json()) == (401, {"success": False, "error": "Not "
                                                          "authenticated"}), creds  # fmt: skip
    assert client.get("/v1/oauth/userinfo", headers=bearer).status_code == 401
    # Enumeration: a wrong password gets the usual answer; only the right one hears why.
    assert sign_in(client, acct, "not the password") == LOGIN_FAILED
    assert sign_in(client, acct) == SUSPENDED
    # The reset code from before is dead, and a new request answers as always, mails nothing.
    used = client.post(
        "/v1/api-user-reset-password",
        json={"email": acct.email, "code": code, "newPassword": "a way back in"},
    )
    assert used.json() == {"success": False, "error": "Invalid or expired reset code"}
    asked = client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    assert (asked.status_code, asked.json()) == (200, {"success": True})
    mailbox.run_workers()
    assert unsent_mail(svc, acct.email) == []
    assert len([m for m in mailbox.to(acct.email) if "reset code" in str(m["Subject"])]) == 1
    assert ("reset_mail", "suspended") in [(r.event, r.outcome) for r in audit_rows(svc)]
    refused = user_cmd(cli, "reset", "--email", acct.email)
    assert refused.exit_code == 1 and "suspended" in refused.output

    lifted = user_cmd(cli, "unsuspend", "--email", acct.email)
    assert lifted.exit_code == 0, lifted.output
    # The password and the API key work again; sessions and tokens from before stay dead.
    assert sign_in(client, acct)["success"] is True
    assert client.get(ME, headers=key).status_code == 200
    for creds in (session, bearer):
        assert client.get(ME, headers=creds).status_code == 401
    again = user_cmd(cli, "unsuspend", "--email", acct.email)
    assert again.exit_code == 1 and "not suspended" in again.output


def test_staff_see_the_suspension_and_its_reason(
    client: TestClient, clock: FakeClock, make_account: Any, cli: CliRunner, svc: Services
) -> None:
    staff: Account = make_account()
    target: Account = make_account()
    granted = user_cmd(cli, "staff", "--email", staff.email)
    assert (granted.exit_code, granted.output.strip()) == (0, f"user {staff.id} is staff")
    _, headers = with_totp(client, clock, staff)
    assert client.get(ME, headers=headers).json()["staffInfo"]["isStaff"] is True
    user_cmd(cli, "suspend", "--email", target.email, "--reason", REASON)
    seen = client.get(f"{BY_ID}/{target.id}", headers=headers).json()
    assert (seen["suspended"], seen["suspensionReason"]) == (True, REASON)
    user_cmd(cli, "unsuspend", "--email", target.email)
    seen = client.get(f"{BY_ID}/{target.id}", headers=headers).json()
    assert seen["suspended"] is False and "suspensionReason" not in seen
    # Not staff any more: other ids are not found again.
    revoked = user_cmd(cli, "staff", "--email", staff.email, "--revoke")
    assert revoked.output.strip() == f"user {staff.id} is no longer staff"
    assert client.get(f"{BY_ID}/{target.id}", headers=headers).json() == {
        "success": False,
        "error": "User not found",
    }
    # The operator's actions name the account acted on, and no account as actor.
    acted = [(r.event, r.account_id, r.subject_id, r.user_agent) for r in audit_rows(svc)
             if r.event in ("staff_grant", "staff_revoke", "suspend", "unsuspend")]  # fmt: skip
    assert acted == [
        ("staff_grant", None, staff.id, "relatch-cli"),
        ("suspend", None, target.id, "relatch-cli"),
        ("unsuspend", None, target.id, "relatch-cli"),
        ("staff_revoke", None, staff.id, "relatch-cli"),
    ]
    shown = cli.invoke(cli_app, ["audit", "--account", target.email]).output
    assert any(line.split("\t")[1:5] == ["suspend", "ok", "-", target.email]
               for line in shown.splitlines())  # fmt: skip


def test_operator_reset_mails_a_code_and_bad_input_is_refused(
    make_account: Any, cli: CliRunner, svc: Services
) -> None:
    acct: Account = make_account()
    sent = user_cmd(cli, "reset", "--email", acct.email)
    assert (sent.exit_code, sent.output.strip()) == (0, f"reset code mailed to user {acct.id}")
    # Queued (at the CLI's own clock, so not sent by the test's workers), with its code.
    assert unsent_mail(svc, acct.email) == ["reset_code"]
    for args in (
        ["reset", "--email", "nobody@example.com"],
        ["staff", "--email", "nobody@example.com"],
        ["suspend", "--email", "nobody@example.com", "--reason", "x"],
        ["suspend", "--email", acct.email, "--reason", "   "],
    ):
        refused = user_cmd(cli, *args)
        assert refused.exit_code == 1, args
    # A reason with a control character is refused before anything is stored.
    bad = user_cmd(cli, "suspend", "--email", acct.email, "--reason", "two\nlines")
    assert bad.exit_code == 2 and "control characters" in bad.output
