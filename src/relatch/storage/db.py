"""Engine and sessions: SQLite (WAL, immediate write transactions) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Result,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from relatch.storage import sqlite_writes


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here; SQLite paths get their folder created."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int | None = None, **kwargs: Any) -> Engine:
    """The engine of `url`; `pool_size` (RELATCH_DB_POOL_SIZE) sizes a PostgreSQL pool."""
    # Secrets in logs: SQL errors otherwise quote their bound parameters (digests,
    # password hashes, addresses) into exception messages and tracebacks.
    kwargs.setdefault("hide_parameters", True)
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            _private_sqlite_file(Path(u.database))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _sqlite_pragmas(engine)
        return engine
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    return _postgresql_engine(url, **kwargs)


# PostgreSQL outages (issue 10): a request never waits long for a database that is gone.
# libpq's connect_timeout (whole seconds, at least 2) bounds a connect to a host that does
# not answer (a refused one fails at once); the pool's checkout timeout bounds a wait for
# a free connection; together under 5 s, after which the request is a 503
# (storage/outage.py, http/errors.py). Pre-ping replaces connections a restart killed.
PG_CONNECT_TIMEOUT = 2
PG_POOL_TIMEOUT = 2.5
# Connections a process may open past its pool for a burst (closed when returned), per
# pooled one: at most pool x (1 + this) per process, a bound the operator can add up
# against max_connections (README). The default pool, 10, keeps the earlier 10 + 20.
PG_OVERFLOW_PER_POOLED = 2
PG_DEFAULT_POOL = 10


def _postgresql_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = dict(kwargs.pop("connect_args", {}))
    if "connect_timeout" not in make_url(url).query:  # the URL's own value wins
        connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    kwargs.setdefault("pool_timeout", PG_POOL_TIMEOUT)
    kwargs.setdefault("pool_size", PG_DEFAULT_POOL)
    kwargs.setdefault("max_overflow", PG_OVERFLOW_PER_POOLED * kwargs["pool_size"])
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its folder 0700) before SQLite does.

    Other local users must not read the database (password hashes, code digests, audit;
    issue 8): SQLite would create it 0644 under the usual umask. It creates `-wal` and
    `-shm` with the database file's mode, so they are 0600 too. Existing files are left
    as the operator set them.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so two concurrent
        # read-then-write transactions queue on busy_timeout instead of failing
        # with SQLITE_BUSY on lock upgrade. Sessions' reads begin DEFERRED, and write
        # transactions queue in the process first: storage/sqlite_writes.py.
        conn.exec_driver_sql(sqlite_writes.begin_sql(conn))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    if engine.dialect.name == "sqlite":
        engine = sqlite_writes.for_reads(engine)  # reads lock nothing (sqlite_writes.py)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception. On SQLite, in the
    process's queue of writers (storage/sqlite_writes.py)."""
    with sqlite_writes.writing(factory) as session:
        yield session


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched: how single-use secrets know they won the race."""
    return int(cast("CursorResult[Any]", result).rowcount)


# Retention prunes (relatch/workers.py): rows go in batches of this size, each batch its own
# short transaction, so a large backlog never holds one long lock over a hot table; at most
# this many batches per table per pass (the rest waits for the next pass).
PRUNE_BATCH = 1000
PRUNE_MAX_BATCHES = 20


def delete_in_batches(
    factory: sessionmaker[Session],
    model: type[Any],
    where: ColumnElement[bool],
    *,
    batch: int = PRUNE_BATCH,
    max_batches: int = PRUNE_MAX_BATCHES,
) -> int:
    """Delete the rows of `model` matching `where`, `batch` rows per transaction; how many."""
    total = 0
    for _ in range(max_batches):
        ids = select(model.id).where(where).order_by(model.id).limit(batch)
        with transaction(factory) as s:
            done = rowcount(s.execute(delete(model).where(model.id.in_(ids))))
        total += done
        if done < batch:
            break
    return total
