"""The suite's own databases (tests/helpers/database.py): each test must get one exactly as
the migrations left it, whatever the test before it did to its copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from relatch.storage import migrate
from relatch.storage.db import make_engine
from tests.helpers import database, pg_pool


def tiny_migration(engine: Engine, revision: str = "head") -> None:
    """Stands in for the migrations: a parent, a child, and a row written by a migration."""
    with engine.begin() as conn:
        for sql in (
            "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
            "INSERT INTO alembic_version VALUES ('tiny')",
            "CREATE TABLE parents (id serial PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE children (id serial PRIMARY KEY,"
            " parent_id integer NOT NULL REFERENCES parents (id))",
            "INSERT INTO parents (name) VALUES ('seed')",
        ):
            conn.execute(text(sql))


def ref_seed(pool: pg_pool.PostgresPool) -> str:
    assert pool._ref is not None
    return pool._ref.seed


def run(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_sqlite_copy_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    template = database.SqliteTemplate()
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
    monkeypatch.setattr(migrate, "upgrade", tiny_migration)
    pool = pg_pool.PostgresPool()
    try:
        with pool.borrow() as first:
            assert run(first, "SELECT name FROM parents") == [("seed",)]
            run(first, "INSERT INTO parents (name) VALUES ('mine')")
            run(first, "INSERT INTO children (parent_id) VALUES (2)")  # deleted first
            with pool.borrow() as second:  # two at once: two schemas
                assert second != first
        with pool.borrow() as url:
            assert url in (first, second)
            # Both reset, none replaced (the third is the copy of the seeded rows).
            assert {pool.url(s) for s in pool._all} == {first, second, pool.url(ref_seed(pool))}
            assert run(url, "SELECT version_num FROM alembic_version") == [("tiny",)]
            assert run(url, "SELECT id, name FROM parents") == [(1, "seed")]
            assert run(url, "SELECT count(*) FROM children") == [(0,)]
            assert run(url, "INSERT INTO parents (name) VALUES ('x') RETURNING id") == [(2,)]
            assert run(url, "INSERT INTO children (parent_id) VALUES (2) RETURNING id") == [(1,)]
            run(url, "ALTER TABLE parents ADD COLUMN extra integer")
            changed = url
        with pool.borrow() as url, pool.borrow() as url2:
            assert changed not in (url, url2)
            assert run(url, "SELECT id, name FROM parents") == [(1, "seed")]
    finally:
        made = list(pool._all)
        pool.close()
    left = {name for (name,) in run(pg_pool.pg_base_url(), "SELECT nspname FROM pg_namespace")}
    assert made and not left & set(made)


def test_postgresql_leaked_lock_costs_a_schema_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(migrate, "upgrade", tiny_migration)
    monkeypatch.setattr(pg_pool, "LOCK_TIMEOUT", "300ms")
    pool = pg_pool.PostgresPool()
    leak = None
    try:
        with pool.borrow() as first:
            leak = make_engine(first)
            conn = leak.connect()
            conn.execute(text("LOCK TABLE children IN ACCESS EXCLUSIVE MODE"))
        with pool.borrow() as url:
            assert url != first
        conn.rollback()
        conn.close()
    finally:
        if leak is not None:
            leak.dispose()
        pool.close()
