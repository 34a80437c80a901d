"""Two real `relatch serve` processes share one limit: through one PostgreSQL schema, and
through one Redis (each with its own SQLite file, so only Redis can carry the count)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import database
from tests.e2e.servers import relatch_server
from tests.helpers.limit_backends import redis_prefix

pytestmark = pytest.mark.e2e
REQUEST = "/v1/api-user-request-reset-password"


def away_from_the_day_boundary() -> None:
    """The servers use the real clock and a 1-day window aligned on 00:00 UTC: keep the
    test from straddling a window boundary (a reset counter would make it flaky)."""
    now = datetime.now(UTC)
    left = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    if left < 60:
        time.sleep(left + 1)


def ask(url: str, email: str) -> httpx.Response:
    return httpx.post(f"{url}{REQUEST}", json={"email": email}, timeout=10)


def check_shared(urls: list[str]) -> None:
    a, b = urls
    email = "shared@example.com"
    assert ask(a, email).status_code == 200
    assert ask(b, email).status_code == 200
    assert ask(a, email).status_code == 200
    # The third was the last one allowed, whichever process counted it.
    for url in (b, a):
        refused = ask(url, email)
        assert refused.status_code == 429
        assert refused.json() == {"success": False, "error": "Too many attempts, try again later"}
        assert int(refused.headers["retry-after"]) > 0
    assert ask(b, "other@example.com").status_code == 200  # per address


LIMITS = {
    "RELATCH_LIMIT_RESET_PER_ADDRESS": "3/1d",
    "RELATCH_LIMIT_RESET_PER_IP": "100/1d",
}


def test_two_servers_share_a_limit_through_postgresql(tmp_path: Path) -> None:
    away_from_the_day_boundary()
    with database("postgresql", tmp_path) as url, ExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            env = {**LIMITS, "RELATCH_DATABASE_URL": url}
            urls.append(stack.enter_context(relatch_server(workdir, **env)).url)
        check_shared(urls)


def test_two_servers_share_a_limit_through_redis(tmp_path: Path) -> None:
    away_from_the_day_boundary()
    with redis_prefix() as (redis_url, prefix), ExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            env = {
                **LIMITS,
                "RELATCH_DATABASE_URL": f"sqlite:///{workdir / 'own.db'}",
                "RELATCH_REDIS_URL": redis_url,
                "RELATCH_REDIS_PREFIX": prefix,
            }
            urls.append(stack.enter_context(relatch_server(workdir, **env)).url)
        check_shared(urls)
