"""A lost database connection at a chosen point, for real: the server ends the backend
(pg_terminate_backend) of the connection that just ran a given statement, as a restart or
a network cut does. Nothing is faked: the driver and SQLAlchemy see a real disconnect."""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from relatch.storage.db import normalise_url


class ConnectionKiller:
    """Once armed with a statement pattern, counts the *points* after it: each statement
    any connection of `engine` runs (the matching one first, as point 0) and each COMMIT
    about to be sent. At point `at` the backend of that connection is terminated, so the
    statement or COMMIT after it fails as a lost connection. `hits` says whether it did."""

    def __init__(self, engine: Engine, admin_url: str) -> None:
        self.engine = engine
        self.admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._at = 0
        self._seen = -1  # points counted since the pattern matched; -1: not yet
        self.hits = 0
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "commit", self._before_commit)

    def arm(self, pattern: str, at: int) -> None:
        with self._lock:
            self._pattern = re.compile(pattern)
            self._at = at
            self._seen = -1

    def disarm(self) -> None:
        with self._lock:
            self._pattern = None

    def close(self) -> None:
        event.remove(self.engine, "after_cursor_execute", self._after_execute)
        event.remove(self.engine, "commit", self._before_commit)
        self.admin.dispose()

    def _point(self, conn: Any, statement: str | None) -> None:
        with self._lock:
            if self._pattern is None:
                return
            before_match = statement is None or not self._pattern.search(statement)
            if self._seen < 0 and before_match:
                return
            self._seen += 1
            if self._seen != self._at:
                return
            self._pattern = None
        pid = conn.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            # Waits (up to 5 s) until the backend is gone: the next use of `conn` fails.
            ended = admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            assert ended.scalar() is True
        self.hits += 1

    def _after_execute(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._point(conn, statement)

    def _before_commit(self, conn: Any) -> None:
        self._point(conn, None)
