"""An operator removes a lost second factor, only after a wait (issue 14): `relatch user
mfa-reset`. Both sides: the operator (or whoever talked them into it) cannot remove the
factor before the wait; the owner's "this was not me", or their sign-in with the factor,
cancels it; after the wait the factor is gone and the password alone signs in. On SQLite
and PostgreSQL, the notices read from the mail the worker delivered, time moved on the
services' clock (the CLI's too)."""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from relatch.app import build
from relatch.app import cli as cli_app
from relatch.services.context import Services
from relatch.storage.models_auth import MfaReset, RecoveryCode, TotpFactor
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import post, request_code
from tests.helpers.audit import rows
from tests.helpers.lifecycle import with_totp
from tests.helpers.mfa import STATUS, cli_on_clock
from tests.helpers.not_me import open_page, token_of
from tests.helpers.notices import (
    SMTPMailbox,
    mails,
    not_me_path,
    text_of,
    the_notice,
)
from tests.helpers.totp import MFA, enable, token

HOURS = 3600
WAIT = 72 * HOURS
ASKED = "will be removed from your Relatch account"
REMOVED = "Two-step sign-in was turned off"
CANCELLED = "was cancelled"
REQUIRED = "ERR_TOTP_TOKEN IS REQUIRED"


@pytest.fixture
def operator(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, svc: Services, clock: FakeClock
) -> Any:
    cli_on_clock(monkeypatch, svc, clock)

    def run(*args: str) -> Result:
        return cli.invoke(cli_app, ["user", "mfa-reset", *args])

    return run


@pytest.fixture
def mailbox(smtp_mailbox: SMTPMailbox) -> SMTPMailbox:
    """Every notice here is read from what a real SMTP server received."""
    return smtp_mailbox


def password_only(client: TestClient, acct: Account) -> Any:
    body = {"username": acct.username, "password": acct.password}
    return client.post("/v1/api-login", json=body).json()


def factor(svc: Services, acct: Account) -> TotpFactor | None:
    with svc.sessions() as s:
        return s.get(TotpFactor, acct.id)


def outcomes(svc: Services, acct: Account) -> list[str | None]:
    with svc.sessions() as s:
        query = select(MfaReset.outcome).where(MfaReset.user_id == acct.id).order_by(MfaReset.id)
        return list(s.scalars(query))


def test_not_before_the_wait_then_gone(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    acct: Account = make_account()
    key, headers = with_totp(client, clock, acct)
    asked = operator("--email", acct.email, "--reason", "lost phone, ticket 4711")
    assert asked.exit_code == 0, asked.output
    assert "will be removed on 2026-01-04 12:01 UTC" in asked.output
    # The owner hears of it at once, with "this was not me" and the due time.
    text = text_of(the_notice(mailbox, acct.email, ASKED))
    assert "2026-01-04 12:01 UTC" in text and "72 hours" in text
    assert "ticket 4711" not in text  # the operator's note stays internal
    assert status_of(client, headers)["removalDue"] == "2026-01-04T12:01:00.000Z"
    # The attacker's side: one second before the wait is over, the factor still stands,
    # whether a worker runs or the password is tried alone.
    clock.advance(WAIT - 1)
    mailbox.run_workers()
    assert password_only(client, acct)["error"].startswith(REQUIRED)
    assert factor(svc, acct) is not None
    refused = operator("--email", acct.email)  # asking again does not restart anything
    assert refused.exit_code == 1 and "already pending" in refused.output
    # The owner's side: at the due time the password alone signs in (no worker needed).
    clock.advance(1)
    signed = password_only(client, acct)
    assert signed["success"] is True, signed
    assert factor(svc, acct) is None
    with svc.sessions() as s:
        assert s.scalars(select(RecoveryCode).where(RecoveryCode.user_id == acct.id)).all() == []
    removed = text_of(the_notice(mailbox, acct.email, REMOVED))
    assert "by an operator" in removed
    assert outcomes(svc, acct) == ["removed"]
    me = {"x-jwt-token": signed["token"]}
    assert status_of(client, me) == {"success": True, "totpEnabled": False, "recoveryCodesLeft": 0}
    # Who asked, and why, is in the audit trail; the removal too.
    trail = [(r.event, r.outcome, r.subject_id, r.user_agent) for r in rows(svc)]
    who = getpass.getuser()
    assert (
        "mfa_reset_request",
        "ok",
        acct.id,
        f"relatch-cli; operator {who}; reason lost phone, ticket 4711",
    ) in trail
    assert ("mfa_reset", "ok", acct.id, "relatch (mfa-reset after the wait)") in trail
    del key


def status_of(client: TestClient, headers: dict[str, str]) -> Any:
    resp = client.get(STATUS, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_worker_removes_it_and_a_restart_keeps_the_wait(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: SMTPMailbox,
    svc: Services,
    operator: Any,
) -> None:
    """Durable: a new process (fresh services on the same database) neither forgets the
    request nor restarts its wait; its worker removes the factor at the due time."""
    acct: Account = make_account()
    with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    clock.advance(WAIT - 1)
    later = build(svc.settings, clock=clock)
    try:
        restarted = SMTPMailbox(later, mailbox.inbox)
        restarted.run_workers()
        assert factor(svc, acct) is not None
        clock.advance(60)
        restarted.run_workers()
        assert factor(svc, acct) is None
    finally:
        later.close()
    the_notice(mailbox, acct.email, REMOVED)
    assert password_only(client, acct)["success"] is True


def test_not_me_cancels_it(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    """Social engineering: someone with the password talked the operator into it; the
    owner's "this was not me" cancels the removal (and signs every session out)."""
    acct: Account = make_account()
    key, _ = with_totp(client, clock, acct)
    assert operator("--email", acct.email, "--reason", "caller says phone lost").exit_code == 0
    path = not_me_path(the_notice(mailbox, acct.email, ASKED))
    _, csrf = open_page(client, path)
    done = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf})
    assert done.status_code == 200
    assert outcomes(svc, acct) == ["not_me"]
    clock.advance(WAIT + HOURS)
    mailbox.run_workers()
    assert factor(svc, acct) is not None
    assert mails(mailbox, acct.email, REMOVED) == []
    # The owner resets the password (the code mailed by not-me has expired by now: a new
    # one); the factor is still asked for.
    code = request_code(client, mailbox, acct.email)
    new = "owner keeps the factor"
    body = {"email": acct.email, "code": code, "newPassword": new}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    owner = Account(acct.id, acct.email, acct.username, new)
    assert password_only(client, owner)["error"].startswith(REQUIRED)
    signed = client.post(
        "/v1/api-login",
        json={"username": acct.username, "password": new, "totpToken": token(clock, key)},
    )
    assert signed.json()["success"] is True


def test_signing_in_with_the_factor_cancels_it(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    acct: Account = make_account()
    key, _ = with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    clock.advance(HOURS)
    body = {"username": acct.username, "password": acct.password, "totpToken": token(clock, key)}
    assert client.post("/v1/api-login", json=body).json()["success"] is True
    assert outcomes(svc, acct) == ["signed_in"]
    cancelled = mails(mailbox, acct.email, CANCELLED)
    assert len(cancelled) == 1
    clock.advance(WAIT)
    mailbox.run_workers()
    assert factor(svc, acct) is not None
    assert password_only(client, acct)["error"].startswith(REQUIRED)


def test_a_wrong_token_cancels_nothing(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    svc: Services,
    operator: Any,
) -> None:
    """Only a working factor cancels: a stranger's wrong token (or none) leaves the
    owner's removal running."""
    acct: Account = make_account()
    key, _ = with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    wrong = "123456" if token(clock, key) != "123456" else "654321"
    body = {"username": acct.username, "password": acct.password, "totpToken": wrong}
    assert client.post("/v1/api-login", json=body).json()["success"] is False
    assert password_only(client, acct)["success"] is False
    assert outcomes(svc, acct) == [None]


def test_operator_cancels_and_refusals(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    plain: Account = make_account()
    no_factor = operator("--email", plain.email)
    assert no_factor.exit_code == 1 and "no second factor" in no_factor.output
    unknown = operator("--email", "nobody@example.com")
    assert unknown.exit_code == 1 and "no account" in unknown.output
    acct: Account = make_account()
    with_totp(client, clock, acct)
    bad = operator("--email", acct.email, "--reason", "two\nlines")
    assert bad.exit_code != 0
    assert operator("--email", acct.email).exit_code == 0
    cancelled = operator("--email", acct.email, "--cancel")
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert len(mails(mailbox, acct.email, CANCELLED)) == 1
    again = operator("--email", acct.email, "--cancel")
    assert again.exit_code == 1 and "no removal" in again.output
    clock.advance(WAIT + HOURS)
    mailbox.run_workers()
    assert factor(svc, acct) is not None
    assert outcomes(svc, acct) == ["cancelled"]
    events = [(r.event, r.outcome) for r in rows(svc) if r.event.startswith("mfa_reset")]
    assert events == [
        ("mfa_reset_request", "invalid_input"),
        ("mfa_reset_request", "invalid_input"),
        ("mfa_reset_request", "ok"),
        ("mfa_reset_cancel", "ok"),
        ("mfa_reset_cancel", "invalid_input"),
    ]


def test_a_factor_set_up_again_is_not_removed(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    svc: Services,
    operator: Any,
) -> None:
    """The owner clears the factor and sets up a new one during the wait: the removal
    asked for the old one never touches the new one."""
    acct: Account = make_account()
    key, headers = with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    cleared = client.post(f"{MFA}/clear", json={"totpToken": token(clock, key)}, headers=headers)
    assert cleared.json() == {"success": True}
    assert outcomes(svc, acct) == ["cleared"]
    clock.advance(30)
    enable(client, clock, headers)
    clock.advance(WAIT + HOURS)
    assert password_only(client, acct)["error"].startswith(REQUIRED)
    assert factor(svc, acct) is not None


def test_suspended_account_is_refused(
    client: TestClient, make_account: Any, clock: FakeClock, cli: CliRunner, operator: Any
) -> None:
    acct: Account = make_account()
    with_totp(client, clock, acct)
    suspended = cli.invoke(cli_app, ["user", "suspend", "--email", acct.email, "--reason", "x"])
    assert suspended.exit_code == 0, suspended.output
    refused = operator("--email", acct.email)
    assert refused.exit_code == 1 and "suspended" in refused.output


def test_ended_requests_are_pruned_with_the_audit_trail(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    acct: Account = make_account()
    with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    assert operator("--email", acct.email, "--cancel").exit_code == 0
    clock.advance(svc.settings.audit_retention_days * 24 * HOURS - HOURS)
    assert operator("--email", acct.email).exit_code == 0  # pending: never pruned
    mailbox.run_workers()
    assert outcomes(svc, acct) == ["cancelled", None]
    clock.advance(HOURS + 1)
    mailbox.run_workers()
    assert outcomes(svc, acct) == [None]


def test_deleting_the_account_takes_a_pending_request(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    mailbox: Mailbox,
    svc: Services,
    operator: Any,
) -> None:
    acct: Account = make_account()
    key, headers = with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    body = {"password": acct.password, "totpToken": token(clock, key)}
    gone = client.request("DELETE", "/v1/api/user", json=body, headers=headers)
    assert gone.json() == {"success": True}
    assert outcomes(svc, acct) == []
    clock.advance(WAIT + HOURS)
    mailbox.run_workers()  # nothing left to remove, nothing fails
    assert mails(mailbox, acct.email, REMOVED) == []


def test_a_stale_request_removes_nothing_and_bypasses_nothing(
    client: TestClient,
    make_account: Any,
    clock: FakeClock,
    svc: Services,
    operator: Any,
) -> None:
    """A request about another factor than the one now set (here: its record altered to
    say so) ends as "stale" at the due time; the sign-in still asks for the factor."""
    acct: Account = make_account()
    with_totp(client, clock, acct)
    assert operator("--email", acct.email).exit_code == 0
    with svc.sessions() as s, s.begin():
        row = s.scalars(select(MfaReset).where(MfaReset.user_id == acct.id)).one()
        assert row.factor_enabled_at is not None
        row.factor_enabled_at = row.factor_enabled_at - timedelta(days=1)
    clock.advance(WAIT)
    assert password_only(client, acct)["error"].startswith(REQUIRED)
    assert factor(svc, acct) is not None
    assert outcomes(svc, acct) == ["stale"]
