"""The three limit backends for tests: SQLite, PostgreSQL and Redis, each real.

Redis is not optional when RELATCH_TEST_REDIS_URL is set (make test and CI set it): an
unreachable server fails the test. Each test gets its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers.database import database

REDIS_ENV = "RELATCH_TEST_REDIS_URL"
BACKENDS = ["sqlite", "postgresql", "redis"]


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set (make test sets it)")
    return url


@contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(url, a fresh key prefix); every key under the prefix is deleted on exit."""
    url = redis_url()
    prefix = f"relatch-test:{secrets.token_hex(6)}:"
    try:
        yield url, prefix
    finally:
        client: Any = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@contextmanager
def backend_settings(kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings overrides for one backend: a database URL (already migrated, from the
    session's template), plus Redis for `redis`."""
    if kind == "redis":
        with (
            database("sqlite", tmp_path, migrated=True) as url,
            redis_prefix() as (r_url, prefix),
        ):
            yield {"database_url": url, "redis_url": r_url, "redis_prefix": prefix}
        return
    with database(kind, tmp_path, migrated=True) as url:
        yield {"database_url": url}
