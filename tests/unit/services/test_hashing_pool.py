"""The bounded hashing pool: at most workers + queue hashes in flight; past that, 429."""

from __future__ import annotations

import threading

import pytest

from relatch.core.errors import RateLimited
from relatch.core.hashing import Argon2Params
from relatch.services.hashing_pool import HashingPool

FAST = Argon2Params(memory_kib=1024, time_cost=1, parallelism=1)


def test_hash_and_verify_through_the_pool() -> None:
    pool = HashingPool(FAST, workers=2, queue=2)
    try:
        stored = pool.hash("correct horse battery")
        assert pool.verify(stored, "correct horse battery")
        assert not pool.verify(stored, "wrong horse battery")
        assert not pool.verify(None, "anything")
    finally:
        pool.close()


def test_refuses_past_capacity_instead_of_queueing_without_bound() -> None:
    pool = HashingPool(FAST, workers=1, queue=0)
    release = threading.Event()
    entered = threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(10)
        return "done"

    holder = threading.Thread(target=lambda: pool._run(slow))
    holder.start()
    try:
        assert entered.wait(5)
        with pytest.raises(RateLimited):
            pool.hash("another password")
        release.set()
        holder.join(5)
        # Capacity is given back once the slow job ends.
        assert pool.hash("later password").startswith("$argon2id$")
    finally:
        release.set()
        pool.close()


def test_runs_off_the_calling_thread() -> None:
    pool = HashingPool(FAST, workers=1, queue=1)
    caller = threading.get_ident()
    try:
        assert pool._run(threading.get_ident) != caller
    finally:
        pool.close()
