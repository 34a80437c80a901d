"""The bounded pool in which argon2 runs: awaited, never on the event loop, never unbounded.

The concurrency model (issue 9). A request never holds a thread for a hash: the use cases
that hash are coroutines; they run their database steps in anyio's worker threads (short)
and *await* each hash here, which runs in this pool's own threads. So anyio's worker
threads, which every cheap request (getCurrentUser, requestResetPassword, the auth
dependencies) needs, are never waiting on argon2, and a flood of logins cannot starve them.

Admission. At most `workers` hashes run (memory DoS: each holds `m` KiB) and at most
`queue` more wait; past that a caller gets RateLimited (HTTP 429) at once, with a
Retry-After from the queue length and the measured hash time, instead of a wait that
grows without bound. A slot is given back when the hash ends in its thread, not when
its caller stops waiting, so the bound counts the work really running (a hash still
queued when its caller goes away is dropped: asyncio.wrap_future cancels it).

Hash threads yield (issue 12). Cheap requests must not wait behind hashes for the CPU
either: by default there is one hash thread per core but one, and each hash thread runs
at a lower scheduling priority (its nice value raised by `nice`, RELATCH_HASH_NICE,
default 10): where hashes and requests share a core (one core, or more processes than
cores), the scheduler runs the event loop and the request threads first and gives the
hashes the rest. Cost: none while no cheap work is waiting (the hashes then get the whole
core); under a mixed load the hashes slow down by the CPU the cheap requests use, which is
the point. Linux sets a nice value per thread; elsewhere the priority is left as it is.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NoReturn, TypeVar

from relatch.core.errors import ServerBusy
from relatch.core.hashing import Argon2Params, Hasher
from relatch.infra import metrics

T = TypeVar("T")

BUSY = "The server is busy, try again in a moment"
# Moving average of hash durations (exponential, this weight for each new sample, the
# first sample taken as it is). Before any was measured: the default argon2 cost, one core.
SMOOTHING = 0.2
FIRST_ESTIMATE = 0.035
# The default queue holds at most this many hashes per worker: about two seconds of work
# at the default argon2 cost (~30 ms a hash), enough for bursts of 64 logins on a small
# machine; and only as many as the workers finish in QUEUE_SECONDS at the measured hash
# time (CPU time, see `__init__`), so that on a slower machine, or with costlier
# parameters, an admitted caller still waits seconds, not minutes (at least one per worker).
QUEUE_PER_WORKER = 64
QUEUE_SECONDS = 5.0
# How much the hash threads' nice value is raised (0: as the process; at most 19). At 10
# the CFS scheduler weighs a hash thread about a tenth of a request thread.
DEFAULT_NICE = 10


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """One hash thread per core but one, at least one: the event loop and the cheap
    requests keep a core of their own, so a hash never waits for them nor they for it
    (on one core the threads share it; argon2 releases the GIL while it hashes)."""
    return max(1, cores() - 1)


def default_queue(workers: int) -> int:
    return QUEUE_PER_WORKER * workers


def lower_priority(step: int) -> None:
    """Raise the calling thread's nice value by `step` (Linux: per thread). Lowering one's
    own priority needs no privilege; where the OS refuses or has no per-thread priority,
    the thread keeps the process's (hashes still run, only without yielding)."""
    if step <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + step))
    except OSError:
        pass


class HashingPool:
    def __init__(
        self,
        params: Argon2Params,
        workers: int | None = None,
        queue: int | None = None,
        *,
        hasher: Hasher | None = None,
        timer: Callable[[], float] = time.thread_time,
        nice: int = DEFAULT_NICE,
    ) -> None:
        """`workers` / `queue` default from the core count (default_workers, default_queue);
        `nice`: how far below the process the hash threads run (lower_priority);
        `hasher` and `timer` replace argon2 and the clock (tests fill the pool with them).
        A hash is timed by its thread's CPU time: what the parameters and the machine cost,
        not the moment's contention, which would shrink the queue (QUEUE_SECONDS) under
        exactly the burst it is there to hold."""
        self.workers = workers if workers is not None else default_workers()
        self.queue = queue if queue is not None else default_queue(self.workers)
        self._by_time = queue is None  # the default: bounded by QUEUE_SECONDS too
        self._hasher = hasher if hasher is not None else Hasher(params)
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="argon2",
            initializer=lower_priority,
            initargs=(nice,),
        )
        self._lock = threading.Lock()
        self._in_flight = 0
        self._timer = timer
        self._seconds: float | None = None  # moving average of one hash's duration

    @property
    def capacity(self) -> int:
        return self.workers + self._queue_now()

    def _queue_now(self) -> int:
        if not self._by_time:
            return self.queue
        seconds = self._seconds if self._seconds is not None else FIRST_ESTIMATE
        in_time = int(QUEUE_SECONDS * self.workers / max(seconds, 1e-6))
        return max(self.workers, min(self.queue, in_time))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def retry_after(self) -> int:
        """Seconds until a refused caller may find room: the queue ahead of it, drained by
        `workers` threads at the measured rate; at least 1."""
        with self._lock:
            waiting = max(0, self._in_flight - self.workers)
            seconds = self._seconds if self._seconds is not None else FIRST_ESTIMATE
        return max(1, math.ceil((waiting + 1) * seconds / self.workers))

    def refuse_if_full(self) -> None:
        """RateLimited now if a hash would be refused now: checked by a caller before the
        work that leads to its hash (a sign-in's failure slot and look-ups), so that a
        flood past the bound is refused for the cost of a cheap request, the hashes keep
        the core, and no owner's failure budget is touched by a refused attempt."""
        with self._lock:
            full = self._in_flight >= self.capacity
        if full:
            self._refuse()

    def _refuse(self) -> NoReturn:
        # Past the bound: refused at once rather than queued (a wait nobody bounds).
        metrics.RATE_LIMIT_REFUSALS.labels("hashing_pool").inc()
        raise ServerBusy(self.retry_after(), BUSY)

    def _submit(self, fn: Callable[..., T], *args: object, follow_up: bool = False) -> Future[T]:
        with self._lock:
            # A follow-up (the second hash of an operation whose first was admitted) is
            # never refused: under a flood, the operations admitted would otherwise lose
            # their second hash to new arrivals and none would finish (a livelock seen in
            # the resets at c=64). Bounded all the same: one per admitted operation.
            full = not follow_up and self._in_flight >= self.capacity
            if not full:
                self._in_flight += 1
                self._publish()
        if full:
            self._refuse()
        try:
            future = self._executor.submit(self._timed, fn, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _timed(self, fn: Callable[..., T], *args: object) -> T:
        started = self._timer()
        try:
            return fn(*args)
        finally:
            took = self._timer() - started
            with self._lock:
                last = self._seconds
                self._seconds = took if last is None else last + SMOOTHING * (took - last)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._publish()

    def _publish(self) -> None:
        """The pool's gauges (infra/metrics.py), with the lock held: `workers` threads run
        the first hashes in flight, the others wait."""
        metrics.HASHING_BUSY.set(min(self._in_flight, self.workers))
        metrics.HASHING_WAITING.set(max(0, self._in_flight - self.workers))

    async def _run(self, fn: Callable[..., T], *args: object, follow_up: bool = False) -> T:
        # Awaited on the event loop: no thread of the caller is held while argon2 runs.
        return await asyncio.wrap_future(self._submit(fn, *args, follow_up=follow_up))

    # The API: awaited by the use cases (services/accounts.py, reset.py, ...).
    # `follow_up`: a later hash of an operation already admitted (`_submit`).
    async def hash(self, password: str, *, follow_up: bool = False) -> str:
        return await self._run(self._hasher.hash, password, follow_up=follow_up)

    async def verify(self, stored: str | None, password: str, *, follow_up: bool = False) -> bool:
        """True when `password` matches; `stored=None` runs a dummy verify and is False."""
        return await self._run(self._hasher.verify, stored, password, follow_up=follow_up)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.needs_rehash(stored)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
