"""Telling a database outage from a bug: the one classifier of database errors.

An outage (the server restarting or shutting down, refusing or dropping connections, no
connection free in the pool in time, a statement cancelled, a transient lock) is nobody's
fault and passes: a request gets HTTP 503 with Retry-After (http/errors.py), a worker step
waits for its next pass (relatch/workers.py), and a reset request is not counted against
itself (services/reset_requests.py). Anything else (a constraint, a missing table, a bad statement)
is a bug and stays one.

Named by class and SQLSTATE only: the messages may quote the statement or its values.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import psycopg
from sqlalchemy import exc as sa

# SQLite's transient answers (another writer holds the lock past busy_timeout); every other
# sqlite3.OperationalError ("no such table", "unable to open database file") is a bug or
# a deployment fault and stays a 500.
SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve now, rather than a bug."""
    if isinstance(exc, sa.TimeoutError | sa.DisconnectionError):
        return True  # no connection free in the pool within pool_timeout
    if not isinstance(exc, sa.DBAPIError):
        return False
    if exc.connection_invalidated:  # the dialect saw the connection drop
        return True
    orig = exc.orig
    # psycopg's OperationalError: connection refused or lost, AdminShutdown and
    # CannotConnectNow (57P0x, a restart), QueryCanceled, too many connections, a
    # deadlock or serialization failure. InterfaceError: the connection is closed.
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig) in SQLITE_TRANSIENT


def describe(exc: BaseException) -> str:
    """A log-safe name of the outage: the driver's exception class and its SQLSTATE."""
    if isinstance(exc, sa.TimeoutError):
        return "pool timeout"
    orig = exc.orig if isinstance(exc, sa.DBAPIError) else exc
    name = type(orig).__name__
    if isinstance(orig, sqlite3.OperationalError) and str(orig) in SQLITE_TRANSIENT:
        return f"{name}: {orig}"  # one of the fixed texts above, no request data
    state = getattr(orig, "sqlstate", None)
    return f"{name} ({state})" if state else name


# While an outage lasts, one WARNING per this many seconds, with the count in between.
LOG_EVERY = 10.0


class OutageLog:
    """A WARNING naming the outage, at most once per `every` seconds: a burst of requests
    or worker passes during a restart is one line, not thousands. `message` takes the
    outage's name (`describe`) and how many failures the line stands for."""

    def __init__(self, logger: logging.Logger, message: str, every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.message = message
        self.every = every
        self._lock = threading.Lock()
        self._last: float | None = None
        self._count = 0

    def note(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if self._last is not None and now - self._last < self.every:
                return
            count, self._count, self._last = self._count, 0, now
        self.logger.warning(self.message, describe(exc), count)
