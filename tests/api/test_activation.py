"""Activation by mailed code (issue 11), through HTTP, on SQLite and PostgreSQL: a new account
is pending until the code of its activation mail (24 hours, 5 tries, one live code) or a
reset proves its address; `relatch user create` makes activated accounts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.core.errors import ActivationCodeRejected
from relatch.core.meta import RequestMeta
from relatch.services import accounts, activation
from relatch.services.context import Services
from relatch.storage import migrate
from relatch.storage.models import ActivationCode, OutboxMessage
from tests.conftest import CODE_LINE, Account, FakeClock, Mailbox
from tests.helpers.activation import ACTIVATE, REQUEST, activate
from tests.helpers.api import create_key, request_code, session_headers
from tests.helpers.audit import rows as audit_rows

REJECTED = {"success": False, "error": "Invalid or expired activation code"}
ALREADY = {"success": False, "error": "This account is already activated"}
DAY = 24 * 3600
PARALLEL = 20


def me(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    resp = client.get("/v1/api/user", headers=headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def try_code(client: TestClient, headers: dict[str, str], code: str) -> Any:
    resp = client.post(ACTIVATE, json={"code": code}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wrong(code: str) -> str:
    return "0000-0000" if code != "0000-0000" else "1111-1111"


def signed_up(client: TestClient, make_account: Any) -> tuple[Account, dict[str, str]]:
    """A new account from createUser (not activated) and a session of it."""
    acct: Account = make_account(activated=False)
    return acct, session_headers(client, acct)


def test_a_new_account_is_pending_until_its_mailed_code_activates_it(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    acct, headers = signed_up(client, make_account)
    before = me(client, headers)  # it can sign in and read itself at once
    assert (before["activated"], before["pending"]) == (False, True)

    mailbox.run_workers()
    (mail,) = [m for m in mailbox.to(acct.email)]
    assert "activat" in str(mail["Subject"]).lower()
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    (code,) = CODE_LINE.findall(text)  # alone on its line, XXXX-XXXX
    assert "24 hours" in text
    # Only a keyed digest is stored, and the delivered mail's body is blanked.
    with svc.sessions() as s:
        (row,) = s.scalars(select(ActivationCode).where(ActivationCode.user_id == acct.id))
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.template == "activation_code"))
        assert all(code not in m.body_text for m in sent)
    assert code not in row.digest and code.replace("-", "") not in row.digest

    # Accepted like a reset code: any case, without the hyphen.
    assert try_code(client, headers, code.lower().replace("-", "")) == {"success": True}
    after = me(client, headers)
    assert (after["activated"], after["pending"]) == (True, False)
    # Used up, and nothing left to activate.
    assert try_code(client, headers, code) == ALREADY
    assert client.post(REQUEST, headers=headers).json() == ALREADY
    events = [(r.event, r.outcome) for r in audit_rows(svc) if r.account_id == acct.id]
    assert ("activate", "ok") in events


def test_the_fifth_try_may_succeed_and_a_sixth_never_does(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    lucky, lucky_headers = signed_up(client, make_account)
    unlucky, unlucky_headers = signed_up(client, make_account)
    lucky_code = mailbox.last_activation_code(lucky.email)
    unlucky_code = mailbox.last_activation_code(unlucky.email)
    for _ in range(4):
        assert try_code(client, lucky_headers, wrong(lucky_code)) == REJECTED
    assert try_code(client, lucky_headers, lucky_code) == {"success": True}  # the 5th try
    for _ in range(5):
        assert try_code(client, unlucky_headers, wrong(unlucky_code)) == REJECTED
    assert try_code(client, unlucky_headers, unlucky_code) == REJECTED  # the 6th: dead
    assert me(client, unlucky_headers)["activated"] is False
    # Malformed input is a wrong try like any other (one answer, never a 5xx).
    assert try_code(client, unlucky_headers, "not a code \u00e9") == REJECTED


def test_a_code_lives_24_hours(
    client: TestClient, make_account: Any, mailbox: Mailbox, clock: FakeClock
) -> None:
    on_time, on_time_headers = signed_up(client, make_account)
    late, late_headers = signed_up(client, make_account)
    codes = {a.email: mailbox.last_activation_code(a.email) for a in (on_time, late)}
    clock.advance(DAY - 1)
    assert try_code(client, on_time_headers, codes[on_time.email]) == {"success": True}
    clock.advance(1)  # at its expiry instant the code is dead
    late_headers = session_headers(client, late)
    assert try_code(client, late_headers, codes[late.email]) == REJECTED


def test_a_new_code_kills_the_old_one(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct, headers = signed_up(client, make_account)
    old = mailbox.last_activation_code(acct.email)
    assert client.post(REQUEST, headers=headers).json() == {"success": True}
    new = mailbox.last_activation_code(acct.email)
    assert new != old
    assert try_code(client, headers, old) == REJECTED
    assert activate(client, mailbox, acct.email, headers) == {"success": True}
    assert me(client, headers)["activated"] is True


def test_new_codes_are_limited_per_account(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct, headers = signed_up(client, make_account)
    _, other_headers = signed_up(client, make_account)
    for _ in range(3):  # RELATCH_LIMIT_ACTIVATION_PER_ACCOUNT: 3/15m,10/1d
        assert client.post(REQUEST, headers=headers).json() == {"success": True}
    refused = client.post(REQUEST, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 900
    assert refused.json() == {"success": False, "error": "Too many attempts, try again later"}
    assert client.post(REQUEST, headers=other_headers).json() == {"success": True}
    clock.advance(900)
    headers = session_headers(client, acct)
    assert client.post(REQUEST, headers=headers).json() == {"success": True}


def test_activation_needs_a_signed_in_caller_of_any_scheme(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services, cli: CliRunner
) -> None:
    assert client.post(ACTIVATE, json={"code": "0000-0000"}).status_code == 401
    assert client.post(REQUEST).status_code == 401
    bad = client.post(ACTIVATE, json={}, headers={"x-jwt-token": "x"})
    assert bad.status_code == 401
    # An API key made by an operator (`relatch apikey create`) names the account too.
    acct, headers = signed_up(client, make_account)
    made = cli.invoke(cli_app, ["apikey", "create", "--email", acct.email])
    assert made.exit_code == 0, made.output
    key = {"x-api-key": made.output.strip().splitlines()[-1]}
    assert client.post(ACTIVATE, json={}, headers=key).status_code == 400  # missing code
    assert activate(client, mailbox, acct.email, key) == {"success": True}
    assert me(client, headers)["activated"] is True


def test_a_reset_activates(client: TestClient, make_account: Any, mailbox: Mailbox) -> None:
    acct, headers = signed_up(client, make_account)
    pending = mailbox.last_activation_code(acct.email)
    code = request_code(client, mailbox, acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    acct.password = "a brand new passphrase"
    headers = session_headers(client, acct)
    assert (me(client, headers)["activated"], me(client, headers)["pending"]) == (True, False)
    assert try_code(client, headers, pending) == ALREADY  # and its activation code is dead


def test_accounts_from_the_cli_are_activated(
    client: TestClient, cli: CliRunner, svc: Services
) -> None:
    args = ["user", "create", "--email", "op@example.com", "--username", "operator1"]
    made = cli.invoke(cli_app, [*args, "--name", "Op"], input="an operator passphrase\n")
    assert made.exit_code == 0, made.output
    acct = Account(0, "op@example.com", "operator1", "an operator passphrase")
    headers = session_headers(client, acct)
    assert (me(client, headers)["activated"], me(client, headers)["pending"]) == (True, False)
    assert create_key(client, headers)["apiKey"]  # it may make credentials at once
    with svc.sessions() as s:  # no activation code, no activation mail: the operator vouched
        assert s.scalars(select(ActivationCode)).all() == []
        # (the key's own notice is the one mail: services/api_keys.py)
        assert s.scalars(select(OutboxMessage.template)).all() == ["api_key_created"]


def test_migration_keeps_accounts_and_proves_no_address_that_never_was(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services, cli: CliRunner
) -> None:
    proven: Account = make_account()  # activated, like an account that once reset
    never: Account = make_account(activated=False)
    made = cli.invoke(cli_app, ["apikey", "create", "--email", never.email])
    key = {"x-api-key": made.output.strip().splitlines()[-1]}
    cfg = migrate.alembic_config()
    previous = ScriptDirectory.from_config(cfg).get_revision("0013_activation").down_revision
    assert isinstance(previous, str)
    with svc.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, previous)
    assert "activation_codes" not in inspect(svc.engine).get_table_names()
    migrate.upgrade(svc.engine)
    assert "activation_codes" in inspect(svc.engine).get_table_names()

    # Existing credentials keep working; only a proven address is activated.
    assert me(client, key)["activated"] is False
    assert me(client, session_headers(client, proven))["activated"] is True
    # The never-proven account asks for a code (its old one went with the downgrade).
    headers = session_headers(client, never)
    assert client.post(REQUEST, headers=headers).json() == {"success": True}
    assert activate(client, mailbox, never.email, headers) == {"success": True}
    assert me(client, key)["activated"] is True


def test_parallel_tries_never_exceed_five_and_one_right_code_wins_once(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    """Brute force and replay, in the service, 20 threads at once: wrong guesses spend at
    most the 5 tries; 20 parallel uses of the right code activate once."""
    guessed, _ = signed_up(client, make_account)
    raced, _ = signed_up(client, make_account)
    codes = {a.email: mailbox.last_activation_code(a.email) for a in (guessed, raced)}
    barrier = threading.Barrier(PARALLEL)

    def attempt(acct: Account, code: str) -> bool:
        view = accounts.by_id(svc, acct.id)
        assert view is not None
        barrier.wait()
        try:
            activation.activate(svc, view, code, RequestMeta(client_ip=None))
        except ActivationCodeRejected:
            return False
        return True

    with ThreadPoolExecutor(PARALLEL) as pool:
        wrongs = list(pool.map(lambda _: attempt(guessed, wrong(codes[guessed.email])),
                               range(PARALLEL)))  # fmt: skip
    assert not any(wrongs)
    with svc.sessions() as s:
        (row,) = s.scalars(select(ActivationCode).where(ActivationCode.user_id == guessed.id))
        assert row.attempts == 5
    with ThreadPoolExecutor(PARALLEL) as pool:
        rights = list(pool.map(lambda _: attempt(raced, codes[raced.email]), range(PARALLEL)))
    assert rights.count(True) == 1
