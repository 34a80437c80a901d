"""A database restart while requests flow (issue 10), against a real `relatch serve` on a
PostgreSQL server of the test's own (tests/e2e/own_postgres.py), stopped for 3 s and started.

Client threads send reset requests, sign-ins, getCurrentUser, whole resets (code from the
mail), OAuth token requests and the authorize page without pause. Every answer must be a
200, a 4xx or a 503 with Retry-After in the contract's shape (a page for the page), never a
500 nor another 5xx; none may take 5 s; once the database is back the same process serves
again (pool pre-ping) and its workers mail again, with no restart of relatch. No reset is
half done: the database shows no consumed code without its new password, nor a new
password with a live older code.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.own_postgres import OwnPostgres, own_postgres
from tests.e2e.servers import relatch_server
from tests.e2e.traffic import (
    BOUND,
    NOT_CONTRACT,
    PASSWORD,
    Answer,
    Resetter,
    Traffic,
    create_user,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DOWN_FOR = 3.0  # seconds the database stays stopped
RECOVER_WITHIN = 10.0  # seconds after the start for every kind of request to succeed again


@pytest.fixture(scope="module")
def postgres() -> Iterator[OwnPostgres]:
    with own_postgres() as pg:
        yield pg


def database_invariants(pg: OwnPostgres, email: str) -> tuple[int, int, int, int]:
    """(password changes, consumed codes, "password changed" mails, live codes older than
    the password) of one account, read from the database itself."""
    with psycopg.connect(pg.url) as conn:
        row = conn.execute(
            """
            SELECT u.credential_generation,
              (SELECT count(*) FROM reset_codes c
                WHERE c.user_id = u.id AND c.consumed_at IS NOT NULL),
              (SELECT count(*) FROM outbox o
                WHERE o.recipient = u.email AND o.template = 'password_changed'),
              (SELECT count(*) FROM reset_codes c
                WHERE c.user_id = u.id AND c.consumed_at IS NULL AND c.revoked_at IS NULL
                  AND c.created_at <= u.password_changed_at)
            FROM users u WHERE u.email = %s
            """,
            (email,),
        ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def test_requests_through_a_database_restart(postgres: OwnPostgres, tmp_path: Path) -> None:
    env = {
        "RELATCH_DATABASE_URL": postgres.url,
        "RELATCH_LIMIT_RESET_PER_ADDRESS": "off",
        "RELATCH_LIMIT_RESET_PER_IP": "off",
    }
    with relatch_server(tmp_path, **env) as srv:
        for name in ("ada", "bob", "cyd"):
            create_user(srv.url, name)
        token = httpx.post(
            f"{srv.url}/v1/api-login",
            json={"username": "ada-restart", "password": PASSWORD},
            timeout=10,
        ).json()["token"]
        traffic = Traffic(srv.url)
        resetter = Resetter(traffic, Path(srv.env["RELATCH_MAIL_DIR"]), "cyd@example.com",
                            "cyd-restart")  # fmt: skip
        threads = [
            traffic.run("requests", traffic.repeat(
                "request", "POST", "/v1/api-user-request-reset-password",
                json={"email": "nobody@example.com"})),
            traffic.run("sign-ins", traffic.repeat(
                "login", "POST", "/v1/api-login",
                json={"username": "bob-restart", "password": PASSWORD})),
            traffic.run("me", traffic.repeat(
                "me", "GET", "/v1/api/user", headers={"x-jwt-token": token})),
            traffic.run("resets", resetter),
            traffic.run("oauth", traffic.repeat(
                "token", "POST", "/v1/oauth/token", data={
                    "grant_type": "client_credentials", "client_id": "nope",
                    "client_secret": "wrong"})),
            traffic.run("pages", traffic.repeat(
                "authorize", "GET", "/v1/oauth/authorize?client_id=nope&response_type=code")),
        ]  # fmt: skip
        try:
            time.sleep(0.5)  # traffic flows; the pool holds connections the stop will kill
            down = time.monotonic()
            postgres.stop()
            time.sleep(DOWN_FOR)
            postgres.start()
            up = time.monotonic()
            recovered = wait_for_recovery(traffic, resetter, up)
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=BOUND * 4)
        assert srv.process.poll() is None, "relatch exited"
        log = srv.log.read_text()

    answers = traffic.answers
    assert not traffic.failures, traffic.failures[:10]
    statuses = Counter(a.status for a in answers)
    # Never a 500, never another 5xx; every answer in time.
    assert all(a.status == 200 or 400 <= a.status < 500 or a.status == 503 for a in answers), (
        statuses
    )
    slow = [a for a in answers if a.took >= BOUND]
    assert not slow, [(a.kind, a.status, round(a.took, 1)) for a in slow]
    # Every refusal in the contract's shape; each 503 with Retry-After.
    assert all(a.shape for a in answers if a.status != 200), statuses
    # The outage was seen, and answered with 503s.
    during = [a for a in answers if down <= a.at < up]
    outage = Counter((a.kind, a.status) for a in during)
    assert sum(1 for a in during if a.status == 503) > 0, outage
    # Recovered without a restart of relatch: every kind succeeded again, and a whole reset
    # (the workers mailed its code) went through after the database came back.
    assert recovered is not None, Counter((a.kind, a.status) for a in answers if a.at >= up)
    # Logged as an outage, at WARNING: no ERROR, no traceback, no password.
    assert "WARNING relatch.http.errors database unavailable" in log, log[-3000:]
    for unwanted in (" ERROR ", "Traceback", " 500 ", PASSWORD):
        assert unwanted not in log, (unwanted, log[-3000:])
    # No half-done reset: every consumed code changed the password (and mailed the notice)
    # in its transaction, and no code older than the password is still live.
    changes, consumed, notices, stale = database_invariants(postgres, "cyd@example.com")
    assert changes == consumed == notices >= 1, (changes, consumed, notices)
    assert stale == 0
    report(answers, during, up - down, recovered, resetter)


def wait_for_recovery(traffic: Traffic, resetter: Resetter, up: float) -> float | None:
    """Seconds from the database's start until every kind of request succeeded again and
    a whole reset went through; None if not within RECOVER_WITHIN."""
    kinds = {"request", "login", "me", *NOT_CONTRACT}
    while (now := time.monotonic()) < up + RECOVER_WITHIN:
        with traffic.lock:
            back = {a.kind for a in traffic.answers if a.at >= up and a.ok}
        if kinds <= back and any(at >= up for at in resetter.done):
            return now - up
        time.sleep(0.1)
    return None


def report(
    answers: list[Answer], during: list[Answer], down: float, recovered: float, r: Resetter
) -> None:
    """The figures for the issue's closing note (shown with pytest -s)."""
    by_kind = Counter((a.kind, a.status) for a in during)
    longest = max((a.took for a in answers), default=0.0)
    print(
        f"\ndatabase down {down:.1f} s (stop, {DOWN_FOR:.0f} s, start); {len(answers)} answers,"
        f" {len(during)} sent meanwhile: {dict(sorted(by_kind.items()))};"
        f" longest answer {longest:.2f} s; all kinds back {recovered:.1f} s after the start;"
        f" whole resets {len(r.done)}"
    )
