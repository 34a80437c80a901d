"""deleteCurrentUser (`DELETE /v1/api/user`, issue 11): confirmed like a sign-in (password,
and TOTP when set, counted against the same limits), session JWT only; every credential dies
at once, unsent mail to the address is dropped but for the deletion notice, the audit trail
keeps a keyed digest and not the address, the address and username are free again, and a
reset request for the address is then what it is for an address that never had an account.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.core import totp
from relatch.services import audit, reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from relatch.storage.models import OutboxMessage
from relatch.storage.models_audit import AuditEvent
from tests.conftest import CODE_LINE, Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.api import create_key, login, session_headers
from tests.helpers.audit import rows as audit_rows
from tests.helpers.lifecycle import (
    LOGIN_FAILED,
    ME,
    REAUTH,
    TOTP_REQUIRED,
    delete_account,
    rows_of,
    unsent_mail,
    with_totp,
)
from tests.helpers.not_me import change_password
from tests.helpers.totp import enable

LIMITED = {"success": False, "error": "Too many attempts, try again later"}
REQUEST = "/v1/api-user-request-reset-password"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # https: Authlib refuses plain http for the bearer tokens. A small per-account failure
    # budget, as in production, to show that deletion spends it.
    return make_settings(
        tmp_path,
        db_url,
        public_url="https://relatch.test",
        limit_failures_per_account="3/15m",
        limit_failures_per_ip="off",
    )


@pytest.fixture
def app_client(svc: Services) -> store.NewClient:
    return store.create_client(
        svc, "App", ["https://app.example/cb"], ["password", "refresh_token"], ["openid"], False
    )


def oauth_tokens(client: TestClient, app: store.NewClient, acct: Account) -> dict[str, Any]:
    assert app.client_secret is not None
    form = {"grant_type": "password", "username": acct.username, "password": acct.password}
    resp = client.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_password_and_second_factor_are_checked_like_a_sign_in(
    client: TestClient, clock: FakeClock, make_account: Any, svc: Services
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    missing = delete_account(client, headers, None)
    assert missing.json() == {
        "success": False,
        "error": "Enter the current password (password) to delete the account",
    }
    assert delete_account(client, headers, "not the password").json() == LOGIN_FAILED
    key, headers = with_totp(client, clock, acct)
    asked = delete_account(client, headers, acct.password).json()
    assert asked["success"] is False and asked["error"].startswith(TOTP_REQUIRED)
    wrong = "000000" if totp.token_at(key, int(clock.now.timestamp())) != "000000" else "111111"
    assert delete_account(client, headers, acct.password, wrong).json() == {
        "success": False,
        "error": "Invalid or already used TOTP token",
    }
    assert rows_of(svc, acct.id)["users"] == 1
    assert client.get(ME, headers=headers).status_code == 200
    token = totp.token_at(key, int(clock.now.timestamp()))
    assert delete_account(client, headers, acct.password, token).json() == {"success": True}
    assert client.get(ME, headers=headers).status_code == 401


def test_wrong_passwords_spend_the_sign_in_budget(
    client: TestClient, clock: FakeClock, make_account: Any
) -> None:
    # Attacker side: a stolen session guesses the password through deletion; it shares the
    # failure budget of sign-ins from unknown clients (3/15m here).
    acct: Account = make_account()
    headers = session_headers(client, acct)
    for _ in range(3):
        assert delete_account(client, headers, "a wrong guess").json() == LOGIN_FAILED
    refused = delete_account(client, headers, acct.password)
    assert (refused.status_code, refused.json()) == (429, LIMITED)
    body = {"username": acct.username, "password": acct.password}
    assert client.post("/v1/api-login", json=body).json() == LIMITED
    clock.advance(900)
    assert delete_account(client, headers, acct.password).json() == {"success": True}


@pytest.mark.parametrize("scheme", ["x-api-key", "Bearer"])
def test_api_keys_and_bearer_tokens_cannot_delete(
    client: TestClient,
    make_account: Any,
    svc: Services,
    app_client: store.NewClient,
    scheme: str,
) -> None:
    acct: Account = make_account()
    if scheme == "x-api-key":
        headers = {"x-api-key": create_key(client, session_headers(client, acct))["apiKey"]}
    else:
        bearer = oauth_tokens(client, app_client, acct)["access_token"]
        headers = {"authorization": f"Bearer {bearer}"}
    client.cookies.clear()
    resp = delete_account(client, headers, acct.password)
    assert (resp.status_code, resp.json()) == (401, REAUTH)
    assert rows_of(svc, acct.id)["users"] == 1


def pending_code(svc: Services, address: str) -> str:
    """The reset code of the reset mail queued (not yet sent) to `address`."""
    with svc.sessions() as s:
        bodies = s.scalars(
            select(OutboxMessage.body_text).where(
                OutboxMessage.recipient == address, OutboxMessage.template == "reset_code"
            )
        ).all()
    found = CODE_LINE.search(bodies[-1])
    assert found
    return found.group(1)


def test_every_credential_dies_at_once(
    client: TestClient,
    clock: FakeClock,
    make_account: Any,
    svc: Services,
    app_client: store.NewClient,
) -> None:
    acct: Account = make_account()
    change_password(client, acct, "a second passphrase")  # a not-me link and its notice
    acct.password = "a second passphrase"
    headers = session_headers(client, acct)
    other = session_headers(client, acct)  # another device's session
    key = {"x-api-key": create_key(client, headers)["apiKey"]}
    tokens = oauth_tokens(client, app_client, acct)
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    assert client.post(REQUEST, json={"email": acct.email}).json() == {"success": True}
    reset_requests.process_requests(svc)  # a reset code, its mail queued and not sent yet
    code = pending_code(svc, acct.email)
    totp_key, _ = enable(client, clock, headers)
    held = rows_of(svc, acct.id)
    assert all(held[t] for t in ("users", "api_keys", "totp_factors", "totp_recovery_codes",
                                 "reset_codes", "not_me_links", "oauth_tokens"))  # fmt: skip
    assert unsent_mail(svc, acct.email) == [
        "password_changed",
        "api_key_created",
        "reset_code",
        "mfa_enabled",
    ]
    client.cookies.clear()

    token = totp.token_at(totp_key, int(clock.now.timestamp()) + 30)
    done = delete_account(client, headers, acct.password, token)
    assert done.json() == {"success": True}
    assert "jwt=" in done.headers["set-cookie"]  # the browser forgets the session too

    for creds in (headers, other, key, bearer):
        client.cookies.clear()
        assert client.get(ME, headers=creds).status_code == 401, creds
    assert client.get("/v1/oauth/userinfo", headers=bearer).status_code == 401
    assert app_client.client_secret is not None
    refreshed = client.post(
        "/v1/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(app_client.client_id, app_client.client_secret),
    )
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
    used = client.post(
        "/v1/api-user-reset-password",
        json={"email": acct.email, "code": code, "newPassword": "the squatter's own"},
    )
    assert used.json() == {"success": False, "error": "Invalid or expired reset code"}
    assert login(client, acct.username, acct.password) == LOGIN_FAILED
    assert set(rows_of(svc, acct.id).values()) == {0}
    # Unsent mail to the address is dropped; the deletion notice alone is queued.
    assert unsent_mail(svc, acct.email) == ["account_deleted"]


def test_an_unactivated_account_loses_its_activation_code_and_mail(
    client: TestClient, make_account: Any, svc: Services, mailbox: Mailbox
) -> None:
    acct: Account = make_account(activated=False)
    headers = session_headers(client, acct)
    assert rows_of(svc, acct.id)["activation_codes"] == 1
    assert unsent_mail(svc, acct.email) == ["activation_code"]
    assert delete_account(client, headers, acct.password).json() == {"success": True}
    assert set(rows_of(svc, acct.id).values()) == {0}
    mailbox.run_workers()
    (notice,) = mailbox.to(acct.email)
    assert notice["Subject"] == "Your Relatch account was deleted"
    text = notice.get_body(preferencelist=("plain",))
    assert text is not None and f"for {acct.email} was deleted" in text.get_content()
    assert "by the service's staff" not in text.get_content()


def test_the_address_and_username_can_be_registered_again(
    client: TestClient, make_account: Any, svc: Services
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert delete_account(client, headers, acct.password).json() == {"success": True}
    again: Account = make_account(email=acct.email, username=acct.username)
    # A new account with an id never used before: the deleted account's sessions do not
    # sign in as it (ids are not reused, SQLite included: migration 0014).
    assert again.id > acct.id
    assert client.get(ME, headers=headers).status_code == 401
    fresh = session_headers(client, again)
    me = client.get(ME, headers=fresh).json()
    assert (me["id"], me["email"], me["username"]) == (again.id, acct.email, acct.username)


def test_the_audit_trail_keeps_a_digest_and_not_the_address(
    client: TestClient, make_account: Any, svc: Services, cli: CliRunner
) -> None:
    acct: Account = make_account(email="Erased.Person@Example.com")
    headers = session_headers(client, acct)
    assert delete_account(client, headers, acct.password).json() == {"success": True}
    (row,) = [r for r in audit_rows(svc) if r.event == "account_delete"]
    assert (row.outcome, row.account_id, row.subject_id) == ("ok", acct.id, None)
    assert row.target_digest == audit.target_digest(svc.settings.secret, acct.email)
    with svc.sessions() as s:
        for r in s.scalars(select(AuditEvent)):
            cells = [str(v) for v in vars(r).values()]
            assert not any("erased" in c.lower() for c in cells), cells
    # The operator still finds the account's history by its address, deletion included.
    shown = cli.invoke(cli_app, ["audit", "--account", "erased.person@example.com"])
    events = [line.split("\t")[1] for line in shown.output.strip().splitlines()[1:]]
    assert events[0] == "account_delete" and "signup" in events and "login" in events


def statements(svc: Services, action: Any) -> list[str]:
    """The SQL statements `action` runs, parameters left out (the work it does)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(re.sub(r"\s+", " ", statement))

    event.listen(svc.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(svc.engine, "before_cursor_execute", record)
    return seen


def test_a_reset_request_for_a_deleted_address_is_one_for_an_unknown_address(
    client: TestClient, make_account: Any, svc: Services, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    assert delete_account(client, session_headers(client, acct), acct.password).json() == {
        "success": True
    }
    mailbox.run_workers()  # the notice goes out
    sent = len(mailbox.messages())

    def ask(address: str) -> Iterator[list[str]]:
        answer: list[Any] = []
        yield statements(svc, lambda: answer.append(client.post(REQUEST, json={"email": address})))
        assert (answer[0].status_code, answer[0].json()) == (200, {"success": True})
        yield statements(svc, lambda: reset_requests.process_requests(svc))

    deleted, unknown = list(ask(acct.email)), list(ask("never.here@example.com"))
    # Same answer, and the same work: the same statements on the request path and in the
    # worker, which finds no account for either.
    assert deleted == unknown
    trail = [(r.event, r.outcome) for r in audit_rows(svc)[-4:]]
    assert trail == [("reset_request", "recorded"), ("reset_mail", "no_account")] * 2
    mailbox.run_workers()
    assert len(mailbox.messages()) == sent
