"""API keys over HTTP and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from relatch.cli.main import app as cli_app
from relatch.services.context import Services
from relatch.storage.models_auth import ApiKey
from tests.conftest import Mailbox
from tests.helpers.api import KEYS, create_key, session_headers


def me(client: TestClient, key: str) -> Any:
    return client.get("/v1/api/user", headers={"x-api-key": key})


def test_create_list_use_revoke(client: TestClient, make_account: Any, svc: Services) -> None:
    acct = make_account()
    headers = session_headers(client, acct)
    made = create_key(client, headers, "deploy bot")
    key, prefix = made["apiKey"], made["prefix"]
    assert key.startswith(prefix + "_") and made["name"] == "deploy bot"

    resp = me(client, key)
    assert resp.status_code == 200 and resp.json()["email"] == acct.email

    listed = client.get(KEYS, headers=headers).json()
    assert listed["success"] is True
    assert [(k["id"], k["prefix"], k["name"]) for k in listed["apiKeys"]] == [
        (made["id"], prefix, "deploy bot")
    ]
    assert key not in str(listed)  # the key is shown once, never listed
    assert listed["apiKeys"][0]["lastUsed"]  # the use above was recorded

    # The key itself can list keys (creating and revoking need a recent sign-in:
    # tests/api/test_recent_sign_in.py).
    assert client.get(KEYS, headers={"x-api-key": key}).json()["success"] is True

    assert client.delete(f"{KEYS}/{made['id']}", headers=headers).json() == {"success": True}
    refused = me(client, key)
    assert refused.status_code == 401
    assert refused.json() == {"success": False, "error": "Not authenticated"}
    assert client.get(KEYS, headers=headers).json()["apiKeys"] == []
    again = client.delete(f"{KEYS}/{made['id']}", headers=headers)
    assert again.json() == {"success": False, "error": "API key not found"}


def test_only_a_digest_is_stored(client: TestClient, make_account: Any, svc: Services) -> None:
    acct = make_account()
    key = create_key(client, session_headers(client, acct), name=None)["apiKey"]
    with svc.sessions() as s:
        rows = list(s.scalars(select(ApiKey)))
    assert len(rows) == 1
    stored = " ".join(str(getattr(rows[0], c.key)) for c in ApiKey.__table__.columns)
    secret_part = key.split("_", 2)[2]
    assert secret_part not in stored and key not in stored
    assert len(rows[0].digest) == 64 and rows[0].prefix == key[:11]


def test_bad_keys_are_401(client: TestClient, make_account: Any) -> None:
    acct = make_account()
    key = create_key(client, session_headers(client, acct))["apiKey"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in [tampered, "rl_00000000_" + key[12:], "not-a-key", "x" * 5000]:
        resp = me(client, bad)
        assert resp.status_code == 401, bad
        assert resp.json() == {"success": False, "error": "Not authenticated"}


def test_another_accounts_key_cannot_be_revoked(client: TestClient, make_account: Any) -> None:
    alice, bob = make_account(), make_account()
    made = create_key(client, session_headers(client, alice))
    bob_headers = session_headers(client, bob)
    resp = client.delete(f"{KEYS}/{made['id']}", headers=bob_headers)
    assert resp.json() == {"success": False, "error": "API key not found"}
    assert me(client, made["apiKey"]).status_code == 200
    assert client.delete(f"{KEYS}/abc", headers=bob_headers).status_code == 400


def test_operations_need_authentication(client: TestClient) -> None:
    assert client.get(KEYS).status_code == 401
    assert client.post(KEYS, json={}).status_code == 401
    assert client.delete(f"{KEYS}/1").status_code == 401


def test_name_too_long(client: TestClient, make_account: Any) -> None:
    headers = session_headers(client, make_account())
    resp = client.post(KEYS, json={"name": "n" * 101}, headers=headers)
    assert resp.status_code == 200
    assert resp.json()["success"] is False


def test_key_survives_reset_and_the_notice_says_so(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct = make_account()
    key = create_key(client, session_headers(client, acct))["apiKey"]
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    # By design: API keys are the account's deliberate credentials.
    assert me(client, key).status_code == 200
    mailbox.run_workers()
    notices = [m for m in mailbox.to(acct.email) if "password was changed" in str(m["Subject"])]
    assert len(notices) == 1
    text = notices[0].get_body(preferencelist=("plain",))
    assert text is not None
    assert "the 1 API key(s) of this account still work" in text.get_content()


def test_notice_without_keys_does_not_mention_them(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct = make_account()
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    mailbox.run_workers()
    notice = [m for m in mailbox.to(acct.email) if "password was changed" in str(m["Subject"])]
    text = notice[0].get_body(preferencelist=("plain",))
    assert text is not None and "API key" not in text.get_content()


@pytest.fixture
def cli_env(svc: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("RELATCH_DATABASE_URL", svc.settings.database_url)
    monkeypatch.setenv("RELATCH_SECRET_KEY", svc.settings.secret.decode())
    monkeypatch.setenv("RELATCH_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("RELATCH_ARGON2_TIME_COST", "1")
    return CliRunner()


def test_cli_create_list_revoke(client: TestClient, make_account: Any, cli_env: CliRunner) -> None:
    acct = make_account()
    created = cli_env.invoke(cli_app, ["apikey", "create", "--email", acct.email, "--name", "cli"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]  # alone on the last line
    assert key.startswith("ei_")  # what the npm client's authenticate() demands
    assert me(client, key).status_code == 200

    listed = cli_env.invoke(cli_app, ["apikey", "list", "--email", acct.email])
    assert listed.exit_code == 0, listed.output
    assert key[:11] in listed.output and key not in listed.output
    key_id = listed.output.split("\t", 1)[0].strip()

    revoked = cli_env.invoke(cli_app, ["apikey", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert me(client, key).status_code == 401
    again = cli_env.invoke(cli_app, ["apikey", "revoke", key_id])
    assert again.exit_code == 1
    assert (
        "no API keys" in cli_env.invoke(cli_app, ["apikey", "list", "--email", acct.email]).output
    )


def test_cli_unknown_account(cli_env: CliRunner) -> None:
    result = cli_env.invoke(cli_app, ["apikey", "create", "--email", "nobody@example.com"])
    assert result.exit_code == 1
    assert "ei_" not in result.output and "rl_" not in result.output
