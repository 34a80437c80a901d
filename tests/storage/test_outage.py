"""Which database errors are an outage (a 503 the client may retry) and which are bugs (a
500): storage/outage.py, on real errors of both databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from relatch.services.context import Services
from relatch.storage import outage
from relatch.storage.db import make_engine
from tests.e2e.servers import free_port


def test_a_refused_connection_is_an_outage() -> None:
    engine = make_engine(f"postgresql://relatch@127.0.0.1:{free_port()}/relatch")
    try:
        with pytest.raises(DBAPIError) as failed, engine.connect():
            pass
    finally:
        engine.dispose()
    assert outage.unavailable(failed.value)
    assert outage.describe(failed.value) == "OperationalError"  # no host, port or text


def test_a_locked_sqlite_database_is_an_outage(tmp_path: Path) -> None:
    """Another writer holding the lock past the busy timeout: transient, not a bug."""
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _no_wait(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")  # (after make_engine's 30 s)

    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x integer)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(DBAPIError) as failed, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.close()
        engine.dispose()
    assert outage.unavailable(failed.value)
    assert outage.describe(failed.value) == "OperationalError: database is locked"


def test_a_bad_statement_is_no_outage(svc: Services) -> None:
    """A missing table is a bug on either database: it stays a 500, logged with its trace."""
    with pytest.raises(DBAPIError) as failed, svc.sessions() as s:
        s.execute(text("SELECT * FROM no_such_table"))
    assert not outage.unavailable(failed.value)
    with pytest.raises(DBAPIError) as failed, svc.sessions() as s:
        s.execute(text("INSERT INTO users (id) VALUES (NULL)"))
    assert not outage.unavailable(failed.value)
