"""The last use of each API key (issue 14), shown by the list and `relatch apikey list`,
written at most once a minute per key and never at the cost of the request."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.services.context import Services
from tests.conftest import FakeClock
from tests.helpers.api import KEYS, create_key, session_headers
from tests.helpers.statements import recording

T0 = "2026-01-01T12:00:00.000Z"


def last_used(client: TestClient, headers: dict[str, str]) -> Any:
    (key,) = client.get(KEYS, headers=headers).json()["apiKeys"]
    return key.get("lastUsed")  # absent until the first use (optional fields are plain)


def use(client: TestClient, key: str) -> None:
    assert client.get("/v1/api/user", headers={"x-api-key": key}).status_code == 200


def key_writes(svc: Services, client: TestClient, key: str) -> int:
    """One request with the key; the UPDATEs of api_keys it ran."""
    with recording(svc.engine) as seen:
        use(client, key)
    return sum(1 for s in seen.statements if s.kind == "UPDATE" and "api_keys" in s.tables)


def test_last_use_is_recorded_at_most_once_a_minute(
    client: TestClient, svc: Services, make_account: Any, clock: FakeClock
) -> None:
    headers = session_headers(client, make_account())
    key = create_key(client, headers)["apiKey"]
    assert last_used(client, headers) is None  # created, never used
    assert key_writes(svc, client, key) == 1
    assert last_used(client, headers) == T0
    # Within the minute: no write at all, however many requests.
    for _ in range(3):
        clock.advance(19)
        assert key_writes(svc, client, key) == 0
    assert last_used(client, headers) == T0
    clock.advance(3)  # 60 s after the recorded use
    assert key_writes(svc, client, key) == 1
    assert last_used(client, headers) == "2026-01-01T12:01:00.000Z"


def test_a_failing_write_of_the_last_use_does_not_fail_the_request(
    client: TestClient, svc: Services, make_account: Any, db_kind: str
) -> None:
    """A real database error on that UPDATE (a trigger refusing it): the key still works,
    and the use is simply not recorded."""
    headers = session_headers(client, make_account())
    key = create_key(client, headers)["apiKey"]
    with svc.engine.begin() as conn:
        if db_kind == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_last_use BEFORE UPDATE OF last_used_at ON api_keys "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_last_use() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_last_use BEFORE UPDATE OF last_used_at ON api_keys "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_last_use()"
                )
            )
    try:
        resp = client.get("/v1/api/user", headers={"x-api-key": key})
        assert resp.status_code == 200 and resp.json()["success"] is True
        assert last_used(client, headers) is None
    finally:
        # The pooled PostgreSQL schemas are checked for changed tables, not triggers.
        with svc.engine.begin() as conn:
            conn.execute(
                text(
                    "DROP TRIGGER refuse_last_use" + ("" if db_kind == "sqlite" else " ON api_keys")
                )
            )
            if db_kind != "sqlite":
                conn.execute(text("DROP FUNCTION refuse_last_use()"))


def test_the_cli_lists_the_last_use(
    client: TestClient, cli: CliRunner, svc: Services, make_account: Any
) -> None:
    acct = make_account()
    headers = session_headers(client, acct)
    key = create_key(client, headers, "ci")["apiKey"]
    listed = cli.invoke(cli_app, ["apikey", "list", "--email", acct.email])
    assert listed.exit_code == 0 and "last used never" in listed.output
    use(client, key)
    listed = cli.invoke(cli_app, ["apikey", "list", "--email", acct.email])
    assert "last used 2026-01-01T12:00:00+00:00" in listed.output
