"""The engine's habits, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from relatch.services.context import Services
from relatch.storage import migrate
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


def test_migration_0007_keeps_pending_requests_only(db_url: str) -> None:
    """Requests decided under the old scheme held typed addresses only: dropped; pending kept."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0006_oauth_code_tokens")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO reset_requests (email, requested_at, processed_at) VALUES "
                    "('done@example.com', '2026-01-01 00:00:00', '2026-01-01 00:00:01'), "
                    "('todo@example.com', '2026-01-01 00:00:00', NULL)"
                )
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            left = conn.execute(text("SELECT email FROM reset_requests")).scalars().all()
        assert left == ["todo@example.com"]
    finally:
        engine.dispose()
