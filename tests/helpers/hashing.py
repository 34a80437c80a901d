"""A hasher that waits for the test: fills the hashing pool without timing anything."""

from __future__ import annotations

import threading
import time

from relatch.core.hashing import Argon2Params, Hasher

FAST = Argon2Params(memory_kib=1024, time_cost=1, parallelism=1)


class HeldHasher(Hasher):
    """argon2 (fast parameters) that first waits until `release` is set, while `held` is
    on; counts the hashes that have entered, and the threads they ran on."""

    def __init__(self, params: Argon2Params = FAST) -> None:
        super().__init__(params)
        self.release = threading.Event()
        self.held = True
        self.entered = 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def _hold(self) -> None:
        with self._lock:
            self.entered += 1
            self.threads.add(threading.get_ident())
        if self.held:
            assert self.release.wait(30), "the test never released the hasher"

    def hold(self) -> None:
        """From now on hashes wait for `release`; `entered` counts from zero again."""
        with self._lock:
            self.entered = 0
            self.held = True

    def wait_entered(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.entered < n:
            assert time.monotonic() < deadline, f"{self.entered} hashes entered, not {n}"
            time.sleep(0.005)

    def hash(self, password: str) -> str:
        self._hold()
        return super().hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        self._hold()
        return super().verify(stored, password)
