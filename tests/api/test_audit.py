"""The audit trail: a row for every reset request, code check, reset, login, password
change and not-me step; no secret in any row; pruned by the worker; `relatch audit`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.core import totp
from relatch.services.context import Services
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import KEYS, login, post, session_headers
from tests.helpers.audit import rows
from tests.helpers.not_me import CSRF_RE, change_password, notice_link, token_of
from tests.helpers.totp import MFA
from tests.helpers.totp import enable as enable_totp

NEW = "amber kettle on the moor"
DAY = 24 * 3600


def events(svc: Services) -> list[tuple[str, str, int | None, bool]]:
    """(event, outcome, account, has address digest) per row, oldest first."""
    return [(r.event, r.outcome, r.account_id, r.target_digest is not None) for r in rows(svc)]


def test_every_event_leaves_a_row_and_no_secret(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    secrets: list[str] = [acct.password, NEW, "wrong password!", "owner is back in"]
    tokens = [login(client, acct.username, acct.password)["token"]]
    assert login(client, acct.username, "wrong password!")["success"] is False
    assert login(client, "ghost", "wrong password!")["success"] is False
    post(client, "api-user-request-reset-password", {"email": acct.email})
    post(client, "api-user-request-reset-password", {"email": "ghost@example.com"})
    code = mailbox.last_code(acct.email)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    check = "api-user-verify-reset-password-code"
    assert post(client, check, {"email": acct.email, "code": wrong})["success"] is False
    assert post(client, check, {"email": acct.email, "code": code})["success"] is True
    body = {"email": acct.email, "code": code, "newPassword": "owner is back in"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    acct.password = "owner is back in"
    tokens.append(change_password(client, acct, NEW))
    path = notice_link(mailbox, acct.email)
    page = client.get(path)
    csrf = CSRF_RE.search(page.text)
    assert csrf
    done = client.post("/not-me", data={"token": token_of(path), "csrf_token": csrf.group(1)})
    assert done.status_code == 200
    fresh = mailbox.last_code(acct.email)
    secrets += [code, fresh, token_of(path), *tokens]

    me, ghost = acct.id, None
    assert events(svc) == [
        ("signup", "ok", me, False),
        ("login", "ok", me, False),
        ("login", "login_failed", me, False),
        ("login", "login_failed", ghost, True),  # unknown login: only its digest
        ("reset_request", "recorded", ghost, True),  # no lookup on this path
        ("reset_request", "recorded", ghost, True),
        ("reset_mail", "code_sent", me, False),
        ("reset_mail", "no_account", ghost, True),
        ("code_check", "code_rejected", me, False),
        ("code_check", "ok", me, False),
        ("reset", "ok", me, False),
        ("login", "ok", me, False),  # change_password signs in first
        ("password_change", "ok", me, False),
        ("not_me_view", "ok", me, False),
        ("not_me", "ok", me, False),  # its fresh code is written in the same transaction
    ]
    for row in rows(svc):
        assert row.at is not None
        if row.event != "reset_mail":  # the worker: request id and IP carried over
            assert row.client_ip == "testclient"
            assert row.user_agent == "testclient"
        assert row.request_id
    # No code (either form, any case), password, JWT, link token or address in any column.
    dump = "\n".join(repr(vars(r)) for r in rows(svc)).lower()
    needles = {s.lower() for s in secrets} | {c.replace("-", "").lower() for c in (code, fresh)}
    needles |= {acct.email.lower(), "ghost@example.com", token_of(path).split(".", 1)[1].lower()}
    for needle in needles:
        assert needle not in dump, needle


def test_failures_are_recorded_with_their_outcome(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": "not it at all", "newPassword": NEW},
        headers={"x-jwt-token": token},
    )
    assert resp.json()["success"] is False
    resp = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": acct.password, "newPassword": "password123"},
        headers={"x-jwt-token": token},
    )
    assert resp.json()["success"] is False
    body = {"email": acct.email, "code": "0000-0000", "newPassword": NEW}
    assert post(client, "api-user-reset-password", body)["success"] is False
    assert client.get("/not-me", params={"token": "1.forged"}).status_code == 400
    got = [(e, o, a) for e, o, a, _ in events(svc)][2:]
    assert got == [
        ("password_change", "login_failed", acct.id),
        ("password_change", "password_rejected", acct.id),
        ("reset", "code_rejected", acct.id),
        ("not_me_view", "link_rejected", None),
    ]


def test_worker_prunes_after_retention(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    acct: Account = make_account()
    login(client, acct.username, acct.password)
    mailbox.run_workers()
    assert len(rows(svc)) == 2
    clock.advance(365 * DAY)
    login(client, acct.username, acct.password)
    mailbox.run_workers()  # exactly 365 days old: kept
    assert len(rows(svc)) == 3
    clock.advance(600)
    mailbox.run_workers()  # older than 365 days: gone; the newer row stays
    assert [r.at for r in rows(svc)] == [clock.now - timedelta(seconds=600)]


def test_cli_prints_newest_first_filtered(
    svc: Services, client: TestClient, make_account: Any, clock: FakeClock, cli: CliRunner
) -> None:
    acct: Account = make_account()
    other: Account = make_account()
    clock.advance(60)
    login(client, acct.username, acct.password)
    clock.advance(60)
    post(client, "api-user-request-reset-password", {"email": "nobody@example.com"})
    everything = cli.invoke(cli_app, ["audit"])
    assert everything.exit_code == 0, everything.output
    lines = everything.output.strip().splitlines()
    assert lines[0].split("\t")[:3] == ["time", "event", "outcome"]
    assert [line.split("\t")[1] for line in lines[1:]] == [
        "reset_request",
        "login",
        "signup",
        "signup",
    ]
    mine = cli.invoke(cli_app, ["audit", "--account", acct.email.upper()])
    assert [line.split("\t")[1] for line in mine.output.strip().splitlines()[1:]] == [
        "login",
        "signup",
    ]
    assert other.email not in mine.output
    # An address without an account is found through its keyed digest.
    nobody = cli.invoke(cli_app, ["audit", "--account", "nobody@example.com"])
    assert [line.split("\t")[1] for line in nobody.output.strip().splitlines()[1:]] == [
        "reset_request"
    ]
    since = (clock.now.replace(microsecond=0)).isoformat()
    recent = cli.invoke(cli_app, ["audit", "--since", since])
    assert [line.split("\t")[1] for line in recent.output.strip().splitlines()[1:]] == [
        "reset_request"
    ]
    bad = cli.invoke(cli_app, ["audit", "--since", "yesterday"])
    assert bad.exit_code != 0


def since(svc: Services, start: int) -> list[tuple[str, str, int | None]]:
    return [(e, o, a) for e, o, a, _ in events(svc)][start:]


def test_a_sign_in_is_audited_with_the_outcome_the_caller_got(
    svc: Services, client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    # Issue 8: "ok" only once the second factor passed; a refused or missing TOTP token
    # is a failed sign-in and is audited as one.
    acct: Account = make_account()
    key, _ = enable_totp(client, clock, session_headers(client, acct))
    start = len(rows(svc))
    body = {"username": acct.username, "password": acct.password}
    clock.advance(30)
    wrong = "000000" if totp.token_at(key, int(clock.now.timestamp())) != "000000" else "111111"
    assert client.post("/v1/api-login", json=body).json()["success"] is False
    assert (
        client.post("/v1/api-login", json={**body, "totpToken": wrong}).json()["success"] is False
    )
    bad_password = {"username": acct.username, "password": "wrong password!", "totpToken": wrong}
    assert client.post("/v1/api-login", json=bad_password).json()["success"] is False
    good = {**body, "totpToken": totp.token_at(key, int(clock.now.timestamp()))}
    assert client.post("/v1/api-login", json=good).json()["success"] is True
    me = acct.id
    assert since(svc, start) == [
        ("login", "totp_required", me),
        ("login", "totp_rejected", me),
        ("login", "login_failed", me),
        ("login", "ok", me),
    ]


def test_sign_in_method_changes_are_audited(
    svc: Services, client: TestClient, make_account: Any, clock: FakeClock, cli: CliRunner
) -> None:
    acct: Account = make_account()
    other: Account = make_account()
    headers = session_headers(client, acct)
    start = len(rows(svc))
    made = client.post(KEYS, json={"name": "ci"}, headers=headers).json()
    assert made["success"] is True
    # Another account's key and an unknown one: one answer, audited on the caller.
    theirs = client.post(KEYS, json={}, headers=session_headers(client, other)).json()["id"]
    assert client.delete(f"{KEYS}/{theirs}", headers=headers).json()["success"] is False
    assert client.delete(f"{KEYS}/{made['id']}", headers=headers).json() == {"success": True}
    pending = client.post(f"{MFA}/create-key", headers=headers).json()["key"]
    bad = {"key": pending, "totpToken": "12345x"}
    assert client.post(f"{MFA}/set-key", json=bad, headers=headers).json()["success"] is False
    good = {"key": pending, "totpToken": totp.token_at(pending, int(clock.now.timestamp()))}
    codes = client.post(f"{MFA}/set-key", json=good, headers=headers).json()["recoveryCodes"]
    wrong = {"totpToken": "0000-0000"}
    assert client.post(f"{MFA}/clear", json=wrong, headers=headers).json()["success"] is False
    cleared = client.post(f"{MFA}/clear", json={"totpToken": codes[0]}, headers=headers)
    assert cleared.json() == {"success": True}
    # The operator's CLI leaves rows too, on the key's account (no client IP).
    assert cli.invoke(cli_app, ["apikey", "create", "--email", acct.email]).exit_code == 0
    listed = cli.invoke(cli_app, ["apikey", "list", "--email", acct.email]).output
    assert cli.invoke(cli_app, ["apikey", "revoke", listed.split("\t", 1)[0]]).exit_code == 0

    me, them = acct.id, other.id
    assert since(svc, start) == [
        ("apikey_create", "ok", me),
        ("login", "ok", them),
        ("apikey_create", "ok", them),
        ("apikey_revoke", "api_key_not_found", me),
        ("apikey_revoke", "ok", me),
        ("totp_set", "totp_rejected", me),
        ("totp_set", "ok", me),
        ("totp_clear", "totp_rejected", me),
        ("totp_clear", "ok", me),
        ("apikey_create", "ok", me),
        ("apikey_revoke", "ok", me),
    ]
    # No key, TOTP secret or recovery code in any row.
    dump = "\n".join(repr(vars(r)) for r in rows(svc))
    for secret in (made["apiKey"], pending, *codes):
        assert secret not in dump
    assert [r.client_ip for r in rows(svc)[-2:]] == [None, None]
