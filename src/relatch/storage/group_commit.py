"""Group commit (issue 12): the writes of many requests in one transaction, each request
answered only once its own rows are committed.

For a cheap write every request of a kind makes (a reset request: its row, its audit row,
its limit counters). Alone, each such request paid a worker-thread hop, the process's
SQLite write turn with BEGIN IMMEDIATE, and a COMMIT, and the turn went from thread to
thread (32 of them on one core). Here the requests queue on the event loop; one drain
task takes what has queued (at most `max_batch` items), runs them in one worker thread in
one write transaction (`db.transaction`: on SQLite the write turn and BEGIN IMMEDIATE of
storage/sqlite_writes.py, on PostgreSQL one transaction on one connection), commits, and
only then answers each request. No timer: a lone request goes at once, in a batch of one;
under load, what queued while one batch was written is the next batch.

An item is a function of the batch's session: it runs its statements and returns what its
caller gets back. A refusal it decides itself (a rate limit) it returns, having undone its
own writes in the transaction (services/limits.py), rather than raising: a raise means the
item failed.

Failures. If the batch raises, nothing of it is committed and it is run again item by
item, each in a transaction of its own, so one failing item (a bug, a constraint, a
deadlock between two processes' batches on PostgreSQL) fails its own request only; the
others are answered as if they had run alone. A database outage (storage/outage.py) fails
every item at once: a retry of each would only multiply the wait before the 503 (issue 10).

Backpressure. At most `max_queue` items wait; past that a request is refused at once with
RateLimited (429 with Retry-After, the contract's "too busy" answer), like the hashing pool
(infra/hashing_pool.py), rather than made to wait: a wait would still hold the request's
memory and connection, and a queue already a second long cannot answer within any useful
deadline. Enumeration: the refusal depends on the load alone, never on what is asked.

One queue per event loop (a process has one; tests may run several in turn).
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from relatch.core.errors import RateLimited
from relatch.infra import metrics
from relatch.storage import outage
from relatch.storage.db import transaction

T = TypeVar("T")
Item = Callable[[Session], Any]

# A batch holds the write lock while it runs: at ~0.3 ms of CPU per reset request, 64
# items keep it under ~20 ms. The queue: about a second of work at the 1,000/s.
MAX_BATCH = 64
MAX_QUEUE = 1024
BUSY = "Too many requests at once, try again shortly"


@dataclass
class _Failed:
    error: Exception


@dataclass
class _Queue:
    waiting: deque[tuple[Item, asyncio.Future[Any]]] = field(default_factory=deque)
    drain: asyncio.Task[None] | None = None


class GroupCommit:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )
        self._seconds_per_item = 0.001  # measured on each batch; for Retry-After only

    async def run(self, item: Callable[[Session], T]) -> T:
        """Run `item` in the next batch's transaction; its result once that committed.

        Raises what `item` raised when run alone, or RateLimited when the queue is full."""
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(loop, _Queue())
        if len(queue.waiting) >= self.max_queue:
            metrics.RATE_LIMIT_REFUSALS.labels("group_commit").inc()
            wait = math.ceil(len(queue.waiting) * self._seconds_per_item)
            raise RateLimited(wait, BUSY)
        future: asyncio.Future[T] = loop.create_future()
        queue.waiting.append((item, future))
        if queue.drain is None or queue.drain.done():
            queue.drain = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue) -> None:
        while queue.waiting:
            batch: list[tuple[Item, asyncio.Future[Any]]] = []
            while queue.waiting and len(batch) < self.max_batch:
                item, future = queue.waiting.popleft()
                if not future.done():  # a caller gone before its batch began: skipped
                    batch.append((item, future))
            if not batch:
                continue
            try:
                outcomes = await anyio.to_thread.run_sync(self._commit, [i for i, _ in batch])
            except BaseException as exc:  # cancelled at shutdown: no caller waits forever
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, _Failed):
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome)

    def _commit(self, items: list[Item]) -> list[Any]:
        """In a worker thread: every item in one transaction, else each alone."""
        began = time.perf_counter()
        try:
            with transaction(self.sessions) as s:
                outcomes = [item(s) for item in items]
        except Exception as exc:
            if len(items) == 1 or outage.unavailable(exc):
                return [_Failed(exc)] * len(items)
            outcomes = self._each_alone(items)
        self._seconds_per_item = (time.perf_counter() - began) / len(items)
        return outcomes

    def _each_alone(self, items: list[Item]) -> list[Any]:
        outcomes: list[Any] = []
        for n, item in enumerate(items):
            try:
                with transaction(self.sessions) as s:
                    outcomes.append(item(s))
            except Exception as exc:
                if outage.unavailable(exc):  # the rest would only wait for it too
                    return outcomes + [_Failed(exc)] * (len(items) - n)
                outcomes.append(_Failed(exc))
        return outcomes
