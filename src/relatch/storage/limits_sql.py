"""The database backend of the limiter (SQLite and PostgreSQL), shared by every process.

Concurrency: each acquire is one transaction of `INSERT ... ON CONFLICT DO UPDATE SET
count = count + 1 RETURNING count` per bucket, in a fixed order. PostgreSQL row locks make
concurrent increments of one bucket queue (READ COMMITTED re-reads the latest row), and the
fixed order rules out deadlocks between requests touching several buckets; SQLite's
`BEGIN IMMEDIATE` (storage/db.py) serialises writers outright. If any bucket went over its
limit the whole transaction rolls back, so a refused request consumes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from relatch.core.limits import Bucket
from relatch.storage.db import transaction
from relatch.storage.models_limits import LimitCounter


class _Refused(Exception):
    def __init__(self, full: list[Bucket]) -> None:
        super().__init__("limit reached")
        self.full = full


class SqlLimitStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        bind = sessions.kw["bind"]
        self._insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
        # Built once per number of buckets, executed with their values (issue 12: building
        # the upsert for every hit cost about a tenth of a reset request).
        self._upserts: dict[int, Any] = {}
        self._decrement = (
            update(LimitCounter)
            .where(
                # Names apart from the columns': SQLAlchemy would take those for SET values.
                LimitCounter.key == bindparam("b_key"),
                LimitCounter.window_seconds == bindparam("b_seconds"),
                LimitCounter.window_start == bindparam("b_start"),
                LimitCounter.count > 0,
            )
            .values(count=LimitCounter.count - 1)
        )

    def acquire(
        self,
        buckets: Sequence[Bucket],
        filled: list[Bucket] | None = None,
        within: Session | None = None,
    ) -> list[Bucket]:
        """Count one hit in every bucket, or in none: returns the buckets that were full.
        `filled` receives those this hit brought to their limit (the hit was counted).
        `within`: counted in the caller's transaction (one write instead of two for a reset
        request); when a bucket was full the hits are taken back in it, so none is counted
        and the caller may still commit the rest (a group commit: storage/group_commit.py).
        Atomic like the own transaction: the rows stay locked (PostgreSQL) or the file
        (SQLite) until the caller's transaction ends."""
        if not buckets:
            return []  # every limit off: no transaction at all
        reached: list[Bucket] = []
        if within is not None:
            full = self._count(within, buckets, reached)
            if full:
                self._give_back(within, buckets)
            elif filled is not None:
                filled.extend(reached)
            return full
        try:
            with transaction(self.sessions) as s:
                full = self._count(s, buckets, reached)
                if full:
                    raise _Refused(full)  # rolls the increments back
        except _Refused as refused:
            return refused.full
        if filled is not None:
            filled.extend(reached)
        return []

    def _upsert(self, n: int) -> Any:
        """One upsert of `n` rows (parameters key0, seconds0, start0, ends0, key1...) that
        returns each row's identity and new count."""
        statement = self._upserts.get(n)
        if statement is None:
            rows = [
                {
                    "key": bindparam(f"key{i}"),
                    "window_seconds": bindparam(f"seconds{i}"),
                    "window_start": bindparam(f"start{i}"),
                    "count": 1,
                    "ends_at": bindparam(f"ends{i}"),
                }
                for i in range(n)
            ]
            statement = self._upserts[n] = (
                self._insert(LimitCounter)
                .values(rows)
                .on_conflict_do_update(
                    index_elements=["key", "window_seconds", "window_start"],
                    set_={"count": LimitCounter.count + 1},
                )
                .returning(
                    LimitCounter.key,
                    LimitCounter.window_seconds,
                    LimitCounter.window_start,
                    LimitCounter.count,
                )
            )
        return statement

    def _count(self, s: Session, buckets: Sequence[Bucket], reached: list[Bucket]) -> list[Bucket]:
        """One hit in each bucket; the full ones returned, those it filled in `reached`."""
        # One statement for every bucket (issue 12: a sign-in hits four to six), on the
        # session's connection, not through the ORM: given parameters, the ORM would take
        # the upsert for a bulk insert and fetch primary keys back.
        # Deadlock: the rows in a fixed order, which both databases lock in.
        ordered = sorted(buckets)
        values: dict[str, object] = {}
        for i, b in enumerate(ordered):
            values.update({f"key{i}": b.key, f"seconds{i}": b.seconds, f"start{i}": b.start})
            values[f"ends{i}"] = b.ends
        rows = s.connection().execute(self._upsert(len(ordered)), values)
        # (Unpacked by position: a Row's `count` is the tuple method.)
        counts = {(key, seconds, start): count for key, seconds, start, count in rows}
        full: list[Bucket] = []
        for b in ordered:
            count = counts[(b.key, b.seconds, b.start)]
            if count > b.limit:
                full.append(b)
            elif count == b.limit:
                reached.append(b)
        return full

    def release(self, buckets: Sequence[Bucket], within: Session | None = None) -> None:
        """Give back one hit in each bucket (the attempt turned out not to be a failure).
        `within`: in the caller's transaction (a sign-in's one write, issue 12)."""
        if not buckets:
            return
        if within is not None:
            self._give_back(within, buckets)
            return
        with transaction(self.sessions) as s:
            self._give_back(s, buckets)

    def _give_back(self, s: Session, buckets: Sequence[Bucket]) -> None:
        conn = s.connection()  # a prebuilt Core UPDATE, as `_count`'s upsert
        for b in sorted(buckets):  # the same fixed order as acquire: no deadlock
            values = {"b_key": b.key, "b_seconds": b.seconds, "b_start": b.start}
            conn.execute(self._decrement, values)

    def prune(self, now: int) -> int:
        with transaction(self.sessions) as s:
            result = s.execute(delete(LimitCounter).where(LimitCounter.ends_at <= now))
            return int(getattr(result, "rowcount", 0) or 0)

    def close(self) -> None:
        pass
