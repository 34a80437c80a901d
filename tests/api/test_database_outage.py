"""The database unreachable (issue 10; contract: HTTP 503 with Retry-After, never a hang,
never a 500), with real faults: a PostgreSQL port nobody listens on, a pool with no free
connection, a connection the server ends in the middle of a reset.

A reset is never half done: a consumed code with the old password, or a new password with
a live code. The whole restart, with requests flowing, is tests/e2e/test_database_restart.py.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relatch.app import build, create_app
from relatch.core import apikeys
from relatch.http.errors import RETRY_AFTER_SECONDS
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage.db import PG_POOL_TIMEOUT
from relatch.storage.models import ResetCode, ResetRequest, User
from tests.conftest import Account, Mailbox
from tests.conftest import test_settings as make_settings
from tests.e2e.servers import free_port
from tests.helpers.kill_connection import ConnectionKiller

OUTAGE_BOUND = 5.0  # seconds: the contract's "never a hang", generously
PAGE = "page"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # One code serves many cut-off resets (each spends a try): the limits are not under test.
    return make_settings(tmp_path, db_url, reset_code_max_attempts=20)


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    """The app on a PostgreSQL URL whose port refuses connections (nothing listens)."""
    url = f"postgresql://relatch@127.0.0.1:{free_port()}/relatch"
    svc = build(make_settings(tmp_path, url, public_url="https://relatch.test"))
    try:
        app = create_app(svc=svc)
        with TestClient(
            app, base_url="https://relatch.test", raise_server_exceptions=False
        ) as client:
            yield client
    finally:
        svc.close()


def assert_503(resp: Any, kind: str = "json") -> None:
    assert resp.status_code == 503, (resp.request.url, resp.status_code, resp.text)
    assert resp.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    if kind == PAGE:
        assert resp.headers["content-type"].startswith("text/html")
        assert "unavailable" in resp.text
    else:
        body = resp.json()
        assert body["success"] is False and isinstance(body["error"], str), body
        assert set(body) == {"success", "error"}, body


def test_every_kind_of_endpoint_answers_503_when_the_database_is_unreachable(
    unreachable: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = unreachable
    ada = {"email": "ada@example.com"}
    key, _ = apikeys.generate()
    page = client.get("/reset-password")  # rendered without the database
    assert page.status_code == 200
    csrf = CSRF_RE.search(page.text)
    assert csrf
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/api-user-request-reset-password", {"json": ada}, "json"),
        ("POST", "/v1/api-user-verify-reset-password-code", {"json": {**ada, "code": "x"}}, ""),
        (
            "POST",
            "/v1/api-user-reset-password",
            {"json": {**ada, "code": "ABCD-EFGH", "newPassword": "a new long password"}},
            "",
        ),
        ("POST", "/v1/api-login", {"json": {"username": "ada", "password": "pw"}}, ""),
        (
            "POST",
            "/v1/api-user-create",  # hashes in the pool first, then writes
            {
                "json": {
                    **ada,
                    "name": "Ada",
                    "username": "ada-lovelace",
                    "password": "analytical engine one",
                    "privacyPolicy": True,
                }
            },
            "",
        ),
        ("GET", "/v1/api/user", {"headers": {"x-api-key": key}}, ""),
        ("GET", "/v1/oauth/jwks", {}, ""),
        (
            "POST",
            "/v1/oauth/token",
            {"data": {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}},
            "",
        ),
        ("GET", "/v1/oauth/authorize?client_id=c&response_type=code", {}, PAGE),
        (
            "POST",
            "/reset-password/ask",
            {"data": {"csrf_token": csrf.group(1), **ada}, "follow_redirects": False},
            PAGE,
        ),
    ]
    caplog.set_level(logging.WARNING)
    for method, path, kwargs, kind in cases:
        assert_503(client.request(method, path, **kwargs), kind or "json")
    # No traceback at ERROR: one WARNING naming the outage (class only, no statement).
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    warned = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert warned and "OperationalError" in warned[0], warned


@pytest.fixture
def postgresql_only(db_kind: str) -> None:
    """First in a test's arguments: skips before the database is made."""
    if db_kind != "postgresql":
        pytest.skip("PostgreSQL only: its connections are lost, its pool times out")


def test_no_free_connection_in_the_pool_is_a_503_within_the_bound(
    postgresql_only: None, svc: Services, client: TestClient
) -> None:
    pool: Any = svc.engine.pool
    with ExitStack() as held:
        for _ in range(pool.size() + pool._max_overflow):
            held.enter_context(svc.engine.connect())
        started = time.monotonic()
        resp = client.post("/v1/api-user-request-reset-password", json={"email": "a@example.com"})
        took = time.monotonic() - started
    assert_503(resp)
    assert PG_POOL_TIMEOUT <= took < OUTAGE_BOUND, took
    # The connections given back, it serves again.
    resp = client.post("/v1/api-user-request-reset-password", json={"email": "a@example.com"})
    assert resp.status_code == 200 and resp.json() == {"success": True}


@pytest.fixture
def killer(postgresql_only: None, svc: Services) -> Iterator[ConnectionKiller]:
    k = ConnectionKiller(svc.engine, svc.settings.database_url)
    yield k
    k.close()


def signs_in(client: TestClient, acct: Account, password: str) -> bool:
    resp = client.post("/v1/api-login", json={"username": acct.username, "password": password})
    assert resp.status_code == 200, resp.text
    return bool(resp.json()["success"])


def reset_state(svc: Services, code_id: int, user_id: int) -> tuple[bool, bool, str, int]:
    """(code consumed, code revoked, the stored password hash, the credential generation)."""
    with svc.sessions() as s:
        code = s.get(ResetCode, code_id)
        user = s.get(User, user_id)
        assert code is not None and user is not None and user.password_hash is not None
        return (
            code.consumed_at is not None,
            code.revoked_at is not None,
            user.password_hash,
            user.credential_generation,
        )


def test_a_reset_cut_off_anywhere_is_all_or_nothing(
    postgresql_only: None,
    svc: Services,
    client: TestClient,
    mailbox: Mailbox,
    make_account: Any,
    killer: ConnectionKiller,
) -> None:
    """The server ends the connection right after each statement (and before the COMMIT)
    of a reset, from the statement that consumes the code on, one point per round, until a
    round runs to the end: every cut-off reset answered 503 and left the code live and the
    old password; the last one consumed the code and set the new password."""
    acct = make_account(password="the old password one")
    tries = svc.settings.reset_code_max_attempts
    cut = 0
    for point in range(60):
        if point % tries == 0:  # each round spends a try of the code (counted first)
            client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
            code = mailbox.last_code(acct.email)
            with svc.sessions() as s:
                code_id = s.scalars(
                    select(ResetCode.id).where(ResetCode.user_id == acct.id)
                    .order_by(ResetCode.id.desc())
                ).first()  # fmt: skip
            assert code_id is not None
            before = reset_state(svc, code_id, acct.id)
            assert before[:2] == (False, False)
        new = f"a brand new password {point}"
        killer.arm(r"^UPDATE reset_codes SET consumed_at", point)
        hits = killer.hits
        resp = client.post(
            "/v1/api-user-reset-password",
            json={"email": acct.email, "code": code, "newPassword": new},
        )
        killer.disarm()
        after = reset_state(svc, code_id, acct.id)
        if killer.hits == hits:  # ran past the last point: the reset went through
            assert resp.status_code == 200 and resp.json() == {"success": True}, resp.text
            consumed, _, new_hash, generation = after
            assert consumed and new_hash != before[2] and generation > before[3]
            assert signs_in(client, acct, new) and not signs_in(client, acct, acct.password)
            break
        cut += 1
        assert_503(resp)
        # Nothing of it happened: the code is live, the password and sessions the old ones.
        assert after == before, point
    else:
        pytest.fail("the reset never ran to the end")
    # The consume, the password, the codes, the tokens, the notice, the audit row, COMMIT...
    assert cut >= 5, cut


def test_a_lost_connection_is_not_counted_against_a_reset_request(
    postgresql_only: None,
    svc: Services,
    client: TestClient,
    mailbox: Mailbox,
    make_account: Any,
    killer: ConnectionKiller,
) -> None:
    """A reset request whose worker step loses the connection stays due, its tries unspent
    (a restart must not push requests towards the dead letters), and is mailed next pass."""
    acct = make_account()
    assert client.post(
        "/v1/api-user-request-reset-password", json={"email": acct.email}
    ).json() == {"success": True}
    killer.arm(r"^DELETE FROM reset_requests", 0)
    mailbox.run_workers()  # the worker survives the lost connection
    assert killer.hits == 1
    with svc.sessions() as s:
        row = s.scalars(select(ResetRequest)).one()
        assert (row.attempts, row.failed_at, row.next_attempt_at) == (0, None, None)
    assert mailbox.last_code(acct.email)  # the next pass decides it
