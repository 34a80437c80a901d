"""The suite's own databases (tests/helpers/database.py): each test must get one exactly as
the migrations left it, whatever the test before it did to its copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from relatch.storage import migrate
from relatch.storage.db import make_engine
from tests.helpers import database as d

CLIENT = (
    "INSERT INTO oauth_clients (client_id, name, redirect_uris, grant_types, scopes, created_at)"
    " VALUES ('{}', 'N', '', '', '', now()) RETURNING id"
)
REQUEST = "INSERT INTO reset_requests (email, requested_at) VALUES ('a@example.com', now())"


def run(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_sqlite_copy_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    template = d.SqliteTemplate()
    try:
        template.copy_to(tmp_path / "copy.db")
        url = f"sqlite:///{tmp_path / 'copy.db'}"
        assert run(url, "PRAGMA journal_mode") == [("wal",)]
        assert len(run(url, "SELECT version_num FROM alembic_version")) == 1
        assert run(url, "SELECT count(*) FROM users") == [(0,)]
    finally:
        template.close()


def test_postgresql_schema_comes_back_as_migrated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows and ids reset, rows a migration wrote put back, a changed structure replaced."""
    real = migrate.upgrade

    def seeding(engine: Engine, revision: str = "head") -> None:
        real(engine, revision)
        with engine.begin() as conn:  # as a migration that writes a row would
            conn.execute(text(CLIENT.format("seed")))

    monkeypatch.setattr(migrate, "upgrade", seeding)
    pool = d.PostgresPool()
    try:
        with pool.borrow() as first:
            assert run(first, "SELECT client_id FROM oauth_clients") == [("seed",)]
            run(first, REQUEST)
            run(first, CLIENT.format("mine"))
            with pool.borrow() as second:  # two at once: two schemas
                assert second != first
        with pool.borrow() as url:
            assert url in (first, second)
            assert run(url, "SELECT client_id FROM oauth_clients") == [("seed",)]
            assert run(url, "SELECT count(*) FROM reset_requests") == [(0,)]
            assert run(url, REQUEST + " RETURNING id") == [(1,)]
            assert run(url, CLIENT.format("next")) == [(2,)]  # after the seed row's 1
            run(url, "ALTER TABLE users ADD COLUMN extra integer")
            changed = url
        with pool.borrow() as url, pool.borrow() as url2:
            assert changed not in (url, url2)
    finally:
        made = list(pool._all)
        pool.close()
    left = {name for (name,) in run(d.pg_base_url(), "SELECT nspname FROM pg_namespace")}
    assert made and not left & set(made)


def test_postgresql_leaked_lock_costs_a_schema_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(d, "LOCK_TIMEOUT", "300ms")
    pool = d.PostgresPool()
    leak = None
    try:
        with pool.borrow() as first:
            leak = make_engine(first)
            conn = leak.connect()
            conn.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        with pool.borrow() as url:
            assert url != first
        conn.rollback()
        conn.close()
    finally:
        if leak is not None:
            leak.dispose()
        pool.close()
