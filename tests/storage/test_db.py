"""The engine's habits, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from relatch.services.context import Services
from relatch.storage.db import make_engine


def test_database_errors_do_not_quote_parameters(svc: Services) -> None:
    """A failed statement's message must not carry its bound values (a digest, a hash)."""
    secret = "digest-that-must-not-be-logged"
    with pytest.raises(DBAPIError) as failed, svc.sessions() as s:
        s.execute(text("INSERT INTO no_such_table VALUES (:v)"), {"v": secret})
    assert secret not in str(failed.value)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
