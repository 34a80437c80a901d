"""What one request asks of the database: each SQL statement's kind and tables, and the
rows the request wrote, recorded with SQLAlchemy's cursor events (issue 12, equal work).

Rows written are counted per statement: on PostgreSQL from the cursor's row count, on
SQLite from the connection's `total_changes` (a statement with RETURNING has no row count
there until its rows are read), taken when the connection's next statement starts, when
it commits or rolls back, and when recording ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

# The tables after FROM, JOIN, INTO and UPDATE (not FOR UPDATE, nor ON CONFLICT DO UPDATE).
TABLES = re.compile(
    r'\b(?:FROM|JOIN|INTO|(?<!FOR )(?<!DO )UPDATE)\s+(?:"?\w+"?\.)?"?(\w+)"?', re.IGNORECASE
)
WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Statement:
    kind: str  # SELECT, INSERT, UPDATE, DELETE, BEGIN...
    tables: tuple[str, ...]
    written: int = 0  # rows inserted, updated or deleted

    @property
    def shape(self) -> tuple[str, tuple[str, ...]]:
        return self.kind, self.tables


@dataclass
class Recorded:
    statements: list[Statement] = field(default_factory=list)

    @property
    def shapes(self) -> list[tuple[str, tuple[str, ...]]]:
        return [s.shape for s in self.statements]

    @property
    def written(self) -> int:
        return sum(s.written for s in self.statements)

    def writes_to(self, table: str) -> list[str]:
        """The kinds of the statements that wrote to `table`, in order."""
        return [s.kind for s in self.statements if s.kind in WRITES and table in s.tables]


def _shape(sql: str) -> Statement:
    kind = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    tables = tuple(dict.fromkeys(t.lower() for t in TABLES.findall(sql)))
    return Statement(kind, tables)


@contextmanager
def counted(engine: Engine, name: str) -> Iterator[list[int]]:
    """One entry for each `name` event of `engine` (a "begin", a "commit") inside the
    block: how many transactions began or committed."""
    seen: list[int] = []

    def count(*_args: Any) -> None:
        seen.append(1)

    event.listen(engine, name, count)
    try:
        yield seen
    finally:
        event.remove(engine, name, count)


@contextmanager
def recording(engine: Engine) -> Iterator[Recorded]:
    """Every statement `engine` runs inside the block, in order."""
    out = Recorded()
    sqlite = engine.dialect.name == "sqlite"
    # SQLite: per raw connection, the statement still open and total_changes before it.
    pending: dict[int, tuple[Statement, Any, int]] = {}

    def settle(raw: Any) -> None:
        open_ = pending.pop(id(raw), None)
        if open_ is not None:
            stmt, conn, before = open_
            stmt.written = conn.total_changes - before

    def before(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        raw = conn.connection.dbapi_connection
        if sqlite:
            settle(raw)
        stmt = _shape(sql)
        out.statements.append(stmt)
        if sqlite and stmt.kind in WRITES:
            pending[id(raw)] = (stmt, raw, raw.total_changes)

    def after(_conn: Any, cursor: Any, _sql: str, *_args: Any) -> None:
        stmt = out.statements[-1]
        if not sqlite and stmt.kind in WRITES:
            stmt.written = max(int(cursor.rowcount or 0), 0)

    def ended(conn: Any) -> None:
        if sqlite:
            settle(conn.connection.dbapi_connection)

    hooks = [
        ("before_cursor_execute", before),
        ("after_cursor_execute", after),
        ("commit", ended),
        ("rollback", ended),
    ]
    for name, fn in hooks:
        event.listen(engine, name, fn)
    try:
        yield out
    finally:
        for name, fn in hooks:
            event.remove(engine, name, fn)
        for stmt, raw, before_changes in list(pending.values()):
            stmt.written = raw.total_changes - before_changes
