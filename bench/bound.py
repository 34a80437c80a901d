"""The bound: argon2id hashes and verifies per second on one core, at given parameters.

`taskset -c 0 python -m bench.bound M T P SECONDS` prints {"hash": n/s, "verify": n/s};
run on the server's core so that the bound and the servers share the same CPU.
"""

from __future__ import annotations

import json
import sys
import time

from argon2 import PasswordHasher, Type


def rate(fn: object, seconds: float) -> float:
    assert callable(fn)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        n += 1
    return n / elapsed


def main() -> None:
    m, t, p, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    ph = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p, type=Type.ID)
    stored = ph.hash("a bench password")
    out = {
        "hash": rate(lambda: ph.hash("a bench password"), seconds),
        "verify": rate(lambda: ph.verify(stored, "a bench password"), seconds),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
