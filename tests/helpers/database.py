"""Databases for the suite: migrated once per session, handed out per test.

Migrating through every Alembic revision costs about 0.3 s on SQLite and 0.7 s on
PostgreSQL; done for each of ~500 database tests it was most of the suite's time. So:

- SQLite: one file is migrated per session and copied for each test (its WAL checkpointed
  first, so the main file is the whole database; the copy keeps WAL mode in its header).
- PostgreSQL: a few schemas are migrated per session (one per database a test holds at
  once); a test borrows one, emptied first: every table but `alembic_version` deleted
  (children first), sequences set back and any rows the migrations wrote put back. DELETE,
  not TRUNCATE: on these near-empty tables it takes ~12 ms where TRUNCATE ... RESTART
  IDENTITY takes ~150 ms (new files for every table and index). A schema whose structure a
  test changed (a downgrade, any DDL) is dropped and replaced by a freshly migrated one.

Both are built from the migrations present when the session starts (never a checked-in
snapshot), so a new revision is in the next run. Tests of the migrations themselves ask
for an empty database (`database(kind, tmp_path)`, or `db_url` without `svc`) and migrate
it for real.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from relatch.storage import migrate
from relatch.storage.db import make_engine, normalise_url
from tests.helpers.pg_pool import (
    PG_ENV,
    PostgresPool,
    new_schema_name,
    pg_base_url,
    quoted,
    schema_url,
)

__all__ = ["MIGRATED", "PG_ENV", "close_templates", "database", "fresh_postgres_database"]

SQLITE_NAME = "relatch.db"


class SqliteTemplate:
    """One SQLite file migrated to head, built on first use and copied per test."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            self._dir = tempfile.TemporaryDirectory(prefix="relatch-template-")
            path = Path(self._dir.name) / SQLITE_NAME
            engine = make_engine(f"sqlite:///{path}")
            try:
                migrate.upgrade(engine)
            finally:
                engine.dispose()
            # Everything into the main file: a copy of it alone is then the database.
            raw = sqlite3.connect(path)
            try:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
            wal = path.with_name(path.name + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0, "template WAL not checkpointed"
            self._path = path
        return self._path

    def copy_to(self, dest: Path) -> None:
        shutil.copyfile(self.path(), dest)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
        self._dir = self._path = None


SQLITE_TEMPLATE = SqliteTemplate()
POSTGRES_POOL = PostgresPool()
# URLs handed out already migrated: `svc` skips migrating those.
MIGRATED: set[str] = set()


def close_templates() -> None:
    """End of session: drop the pooled schemas, delete the template file."""
    try:
        POSTGRES_POOL.close()
    finally:
        SQLITE_TEMPLATE.close()
        MIGRATED.clear()


@contextmanager
def database(kind: str, tmp_path: Path, *, migrated: bool = False) -> Iterator[str]:
    """A database URL of its own: an SQLite file, or a PostgreSQL schema.

    Empty by default (the caller migrates it: the migration tests do); `migrated=True`
    gives one already at head, from the session's template.
    """
    if kind == "sqlite":
        path = tmp_path / SQLITE_NAME
        url = f"sqlite:///{path}"
        # A second call in one test names the same file, as it always did: never copy
        # over a database in use, and call it migrated only if the template made it.
        mine = migrated and not path.exists()
        if mine:
            SQLITE_TEMPLATE.copy_to(path)
            MIGRATED.add(url)
        try:
            yield url
        finally:
            if mine:
                MIGRATED.discard(url)
        return
    if migrated:
        with POSTGRES_POOL.borrow() as url:
            MIGRATED.add(url)
            try:
                yield url
            finally:
                MIGRATED.discard(url)
        return
    base = pg_base_url()
    schema = new_schema_name()
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {quoted(schema)}"))
    try:
        yield schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {quoted(schema)} CASCADE"))
        admin.dispose()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A PostgreSQL database of its own (not a schema), empty, on RELATCH_TEST_DATABASE_URL's
    server; dropped on exit, with any connection still open to it (several server
    processes on one database: tests/e2e/test_two_processes.py). OperationalError when
    the server is not reachable."""
    base = pg_base_url()
    name = f"relatch_{secrets.token_hex(6)}"
    admin = create_engine(
        normalise_url(base), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quoted(name)}"))
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted(name)} WITH (FORCE)"))
    finally:
        admin.dispose()
