"""The bounded pool in which argon2 runs: never on the event loop, never unbounded.

Memory DoS: each hash holds `m` KiB; at most `workers` run at once and at most `queue`
wait, so a burst of resets or logins cannot exhaust memory. Past the queue, callers get
RateLimited (HTTP 429) rather than piling up.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread

from relatch.core.errors import RateLimited
from relatch.core.hashing import Argon2Params, Hasher


class HashingPool:
    def __init__(self, params: Argon2Params, workers: int, queue: int) -> None:
        self._hasher = Hasher(params)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = threading.BoundedSemaphore(workers + queue)

    def _run(self, fn: object, *args: object) -> object:
        if not self._slots.acquire(blocking=False):
            raise RateLimited(1, "The server is busy, try again in a moment")
        try:
            return self._executor.submit(fn, *args).result()  # type: ignore[arg-type]
        finally:
            self._slots.release()

    # Blocking API, for code already off the event loop (sync services in the threadpool).
    def hash(self, password: str) -> str:
        return str(self._run(self._hasher.hash, password))

    def verify(self, stored: str | None, password: str) -> bool:
        return bool(self._run(self._hasher.verify, stored, password))

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.needs_rehash(stored)

    # Async API, for the event loop.
    async def ahash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.hash, password)

    async def averify(self, stored: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(self.verify, stored, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
