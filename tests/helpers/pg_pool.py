"""Migrated PostgreSQL schemas for the suite, lent to tests and reset between them.

See tests/helpers/database.py for why; this is the PostgreSQL half.
"""

from __future__ import annotations

import graphlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from relatch.storage import migrate
from relatch.storage.db import make_engine, normalise_url

PG_ENV = "RELATCH_TEST_DATABASE_URL"
# Longest a reset or drop waits for a lock a test left behind (a connection it leaked).
LOCK_TIMEOUT = "5s"

# The structure of a schema, in names only (the same in every schema): every column of
# every table, index and sequence, and every constraint. Compared before a schema is
# reused, so that a test's DDL (a downgrade it did not undo) cannot leak into the next.
# Reached through indexed catalog lookups (pg_depend on the namespace, then pg_index,
# pg_attribute, pg_constraint by relation): ~3 ms, where scanning pg_class and
# pg_constraint by namespace took ~50 ms on catalogs bloated by many schemas come and gone.
_FINGERPRINT = text(
    """
    WITH tabs AS (
      SELECT objid AS oid FROM pg_depend
      WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_namespace'::regclass
        AND refobjid = cast(:s AS regnamespace)
    ), rels AS (
      SELECT oid FROM tabs
      UNION SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM tabs)
    )
    SELECT md5(
      coalesce((
        SELECT string_agg(c.relname || '.' || a.attname || ':' || t.typname || ':'
                          || a.atttypmod || ':' || a.attnotnull || ':' || a.atthasdef,
                          ',' ORDER BY c.relname, a.attname)
        FROM rels r JOIN pg_class c ON c.oid = r.oid
          JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid), '')
      || '|' || coalesce((
        SELECT string_agg(conname || ':' || contype::text, ',' ORDER BY conname)
        FROM pg_constraint WHERE conrelid IN (SELECT oid FROM tabs)), ''))
    """
)


def pg_base_url() -> str:
    """RELATCH_TEST_DATABASE_URL, or skip: PostgreSQL is not optional when it is set (make
    test and CI set it): an unreachable server then fails the test instead of skipping it."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (make test sets it)")
    return base


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def new_schema_name() -> str:
    return f"t_{secrets.token_hex(6)}"


def quoted(*names: str) -> str:
    """A quoted, qualified identifier. Every name put into SQL text here is a schema name
    made by new_schema_name() or a table or sequence name read from the catalog, quoted
    by this function: hence the S608 waivers below."""
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


@dataclass
class _Reference:
    """What a schema looks like right after the migrations: the state a reset restores."""

    fingerprint: str
    versions: list[str]
    tables: list[str]  # parents before children; without alembic_version
    sequences: dict[str, tuple[int | None, int]]  # name -> (last_value, start_value)
    seeded: list[str]  # tables the migrations wrote rows into, copied into `seed`
    seed: str  # schema holding those copies
    cyclic: bool  # foreign keys in a cycle: no delete order, TRUNCATE ... CASCADE instead


class PostgresPool:
    """Migrated PostgreSQL schemas, lent one per database a test holds, reset on reuse."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._base = ""
        self._free: list[str] = []
        self._all: list[str] = []
        self._ref: _Reference | None = None

    def engine(self) -> Engine:
        if self._engine is None:
            self._base = pg_base_url()
            self._engine = create_engine(normalise_url(self._base), pool_size=1)
        return self._engine

    def url(self, schema: str) -> str:
        return schema_url(self._base, schema)

    @contextmanager
    def borrow(self) -> Iterator[str]:
        schema = self._take()
        try:
            yield self.url(schema)
        finally:
            self._free.append(schema)

    def _take(self) -> str:
        while self._free:
            schema = self._free.pop()
            if self._reset(schema):
                return schema
            self._drop(schema)
        return self._create()

    def _create(self) -> str:
        schema = new_schema_name()
        with self.engine().begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {quoted(schema)}"))
        self._all.append(schema)
        migrated = make_engine(self.url(schema))
        try:
            migrate.upgrade(migrated)
        finally:
            migrated.dispose()
        if self._ref is None:
            with self.engine().begin() as conn:
                self._ref = self._reference(conn, schema)
        return schema

    def _reference(self, conn: Connection, schema: str) -> _Reference:
        s = {"s": schema}
        names = conn.execute(
            text(
                "SELECT relname FROM pg_class WHERE relnamespace = cast(:s AS regnamespace)"
                " AND relkind IN ('r', 'p') AND NOT relispartition"
                " AND relname <> 'alembic_version'"
            ),
            s,
        ).scalars()
        graph: dict[str, set[str]] = {name: set() for name in names}
        for child, parent in conn.execute(
            text(
                "SELECT c.relname, p.relname FROM pg_constraint k"
                " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid"
                " WHERE k.contype = 'f' AND k.connamespace = cast(:s AS regnamespace)"
            ),
            s,
        ):
            if child != parent and child in graph:
                graph[child].add(parent)
        try:
            tables, cyclic = list(graphlib.TopologicalSorter(graph).static_order()), False
        except graphlib.CycleError:
            tables, cyclic = sorted(graph), True
        seeded = []
        for t in tables:
            probe = f"SELECT EXISTS (SELECT FROM {quoted(schema, t)})"  # noqa: S608
            if conn.execute(text(probe)).scalar():
                seeded.append(t)
        seed = schema + "_seed"
        if seeded:
            conn.execute(text(f"CREATE SCHEMA {quoted(seed)}"))
            self._all.append(seed)
            for t in seeded:
                copy = f"CREATE TABLE {quoted(seed, t)} AS SELECT * FROM {quoted(schema, t)}"  # noqa: S608
                conn.execute(text(copy))
        sequences = {
            name: (last, start)
            for name, last, start in conn.execute(
                text(
                    "SELECT sequencename, last_value, start_value FROM pg_sequences"
                    " WHERE schemaname = :s"
                ),
                s,
            )
        }
        return _Reference(
            fingerprint=self._fingerprint(conn, schema),
            versions=self._versions(conn, schema),
            tables=tables,
            sequences=sequences,
            seeded=seeded,
            seed=seed,
            cyclic=cyclic,
        )

    @staticmethod
    def _fingerprint(conn: Connection, schema: str) -> str:
        return str(conn.execute(_FINGERPRINT, {"s": schema}).scalar_one())

    @staticmethod
    def _versions(conn: Connection, schema: str) -> list[str]:
        rows = conn.execute(text(f"SELECT version_num FROM {quoted(schema, 'alembic_version')}"))  # noqa: S608
        return sorted(rows.scalars())

    def _reset(self, schema: str) -> bool:
        """Back to the state right after the migrations; False if the structure changed."""
        ref = self._ref
        assert ref is not None
        try:
            with self.engine().begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                if (
                    self._fingerprint(conn, schema) != ref.fingerprint
                    or self._versions(conn, schema) != ref.versions
                ):
                    return False
                if ref.cyclic:
                    every = ", ".join(quoted(schema, t) for t in ref.tables)
                    statements = [f"TRUNCATE {every} CASCADE"]
                else:
                    statements = [f"DELETE FROM {quoted(schema, t)}" for t in reversed(ref.tables)]  # noqa: S608
                statements += [
                    f"INSERT INTO {quoted(schema, t)} OVERRIDING SYSTEM VALUE"  # noqa: S608
                    f" SELECT * FROM {quoted(ref.seed, t)}"
                    for t in ref.seeded
                ]
                conn.exec_driver_sql("; ".join(statements))
                if ref.sequences:
                    conn.exec_driver_sql(
                        "SELECT "
                        + ", ".join(
                            f"setval('{quoted(schema, name)}', {last}, true)"
                            if last is not None
                            else f"setval('{quoted(schema, name)}', {start}, false)"
                            for name, (last, start) in ref.sequences.items()
                        )
                    )
            return True
        except DBAPIError:  # a lock a leaked connection holds: use another schema
            return False

    def _drop(self, schema: str) -> None:
        try:
            with self.engine().begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted(schema)} CASCADE"))
            self._all.remove(schema)
        except DBAPIError:
            pass  # still locked: close() tries again at the end of the session

    def close(self) -> None:
        if self._engine is None:
            return
        for schema in list(self._all):
            self._drop(schema)
        left, self._all = self._all, []
        self._engine.dispose()
        self._engine, self._free, self._ref = None, [], None
        if left:  # a connection a test leaked still holds them: say so, do not hang
            raise RuntimeError(f"PostgreSQL schemas left behind (locked): {left}")
