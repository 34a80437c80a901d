"""The engine's habits, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from relatch.services.context import Services
from relatch.storage import migrate
from relatch.storage.db import make_engine, make_sessionmaker, transaction


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


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Path, sessionmaker[Session]]]:
    path = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    try:
        yield path, make_sessionmaker(engine)
    finally:
        engine.dispose()


def writer_could_begin(path: Path) -> bool:
    """Whether a writer elsewhere (another process) would get SQLite's write lock now."""
    raw = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        raw.close()


def test_sqlite_reads_take_no_write_lock(sqlite_file: tuple[Path, sessionmaker[Session]]) -> None:
    path, sessions = sqlite_file
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 0
        assert writer_could_begin(path)
    with transaction(sessions) as s:
        assert not writer_could_begin(path)  # taken at BEGIN, before any statement
        s.execute(text("INSERT INTO t VALUES (1)"))
        # A read meanwhile answers at once, from the last committed state.
        with sessions() as r:
            assert r.execute(text("SELECT count(*) FROM t")).scalar() == 0
    assert writer_could_begin(path)


def test_sqlite_writers_queue_in_the_process_not_on_the_file(
    sqlite_file: tuple[Path, sessionmaker[Session]],
) -> None:
    """A second writer of the process waits for its turn holding no connection (so not in
    SQLite's busy handler), and writes once the first has committed."""
    _, sessions = sqlite_file
    pool = sessions.kw["bind"].pool
    release = threading.Event()
    second_thread: list[int] = []

    def write(n: int) -> None:
        if n == 2:
            second_thread.append(threading.get_ident())
        with transaction(sessions) as s:
            s.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            if n == 1:
                assert release.wait(10)

    def waits_for_its_turn() -> bool:
        # The thread's innermost Python frame (mechanism, not timing: polled, no sleep
        # asserted): blocked on the process's lock in storage/sqlite_writes.py `_turn`.
        frame = sys._current_frames().get(second_thread[0]) if second_thread else None
        return frame is not None and frame.f_code.co_name == "_turn"

    with ThreadPoolExecutor(2) as threads:
        first = threads.submit(write, 1)
        while pool.checkedout() != 1:
            assert not first.done(), first.result()
            time.sleep(0.005)
        second = threads.submit(write, 2)
        deadline = time.monotonic() + 10
        while not waits_for_its_turn():
            assert time.monotonic() < deadline and not second.done(), "second writer not queued"
            time.sleep(0.005)
        assert pool.checkedout() == 1  # the first writer's connection only
        release.set()
        first.result()
        second.result()
    with sessions() as s:
        assert s.execute(text("SELECT n FROM t ORDER BY rowid")).scalars().all() == [1, 2]


def test_sqlite_nested_write_transaction_fails_at_once(
    sqlite_file: tuple[Path, sessionmaker[Session]],
) -> None:
    """It would wait for itself (30 s, then "database is locked"); refused instead."""
    _, sessions = sqlite_file
    with transaction(sessions) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError, match="nested"), transaction(sessions):
            pass
