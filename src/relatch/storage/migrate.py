"""Alembic, run from code: `relatch migrate`, `relatch serve` and the tests all come here."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

VERSION_TABLE = "alembic_version"  # Alembic's default


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "relatch.storage:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Some revisions rebuild a table on SQLite (copy, drop, rename: Alembic's batch
            # mode); with foreign keys on, dropping the old parent table would cascade to
            # its children (every credential of every account). Off for the run, which
            # must leave no dangling reference behind; on again before the connection goes
            # back to the pool. A PRAGMA is a no-op inside a transaction: set before BEGIN.
            _sqlite_foreign_keys(conn, on=False)
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left {len(broken)} dangling reference(s)")
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


@functools.cache
def heads() -> frozenset[str]:
    """The revisions the shipped migrations end at (one, unless they branch)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current(conn: Connection) -> frozenset[str]:
    """The revisions the database is at (none: never migrated). Read directly: Alembic's
    MigrationContext logs two INFO lines each time, and readiness asks every few seconds."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    return frozenset(conn.scalars(text("SELECT version_num FROM alembic_version")))
