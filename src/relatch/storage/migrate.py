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
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


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
