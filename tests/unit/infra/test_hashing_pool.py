"""The bounded hashing pool: awaited, off the event loop, at most workers + queue in flight;
past that, 429 at once with a Retry-After from the queue and the measured hash time."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading

import anyio
import pytest

from relatch.core.errors import RateLimited
from relatch.infra import hashing_pool, metrics
from relatch.infra.hashing_pool import HashingPool
from tests.helpers.hashing import FAST, HeldHasher


def test_hash_and_verify_through_the_pool() -> None:
    async def main() -> None:
        pool = HashingPool(FAST, workers=2, queue=2)
        try:
            stored = await pool.hash("correct horse battery")
            assert await pool.verify(stored, "correct horse battery")
            assert not await pool.verify(stored, "wrong horse battery")
            assert not await pool.verify(None, "anything")
        finally:
            pool.close()

    anyio.run(main)


def test_queue_bound_holds_exactly() -> None:
    """workers + queue hashes are admitted and wait; the next is refused at once."""

    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=2, queue=3, hasher=hasher)
        try:
            admitted = [asyncio.ensure_future(pool.hash(f"password {i}")) for i in range(5)]
            await anyio.sleep(0)
            assert pool.in_flight == 5
            with pytest.raises(RateLimited) as refused:
                await pool.hash("one too many")
            assert refused.value.retry_after >= 1
            with pytest.raises(RateLimited):
                await pool.verify(None, "nor a verify")
            hasher.release.set()
            assert all(h.startswith("$argon2id$") for h in await asyncio.gather(*admitted))
            # Capacity is given back once the hashes end.
            assert pool.in_flight == 0
            assert (await pool.hash("later password")).startswith("$argon2id$")
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_retry_after_from_queue_length_and_measured_hash_time() -> None:
    async def main() -> None:
        hasher = HeldHasher()
        hasher.held = False
        ticks = itertools.count(step=5.0)  # every hash measured at 5 s
        pool = HashingPool(FAST, workers=1, queue=2, hasher=hasher, timer=lambda: next(ticks))
        try:
            assert pool.retry_after() == 1  # nothing waiting, nothing measured: at least 1 s
            await pool.hash("measured once")
            hasher.held = True
            admitted = [asyncio.ensure_future(pool.hash(f"password {i}")) for i in range(3)]
            await anyio.sleep(0)
            with pytest.raises(RateLimited) as refused:
                await pool.hash("refused")
            # Two waiting ahead of the next one, and its own hash: 3 x 5 s on one worker.
            assert refused.value.retry_after == 15
            hasher.release.set()
            await asyncio.gather(*admitted)
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_the_default_queue_holds_only_what_the_workers_finish_in_queue_seconds() -> None:
    """Owner side of overload on a slow machine: with hashes measured at 1 s, the default
    queue admits QUEUE_SECONDS of them per worker, not QUEUE_PER_WORKER (an admitted caller
    waits seconds, not a minute); a queue set explicitly keeps its count."""

    async def main() -> None:
        hasher = HeldHasher()
        hasher.held = False
        ticks = itertools.count(step=1.0)  # every hash measured at 1 s
        pool = HashingPool(FAST, workers=1, hasher=hasher, timer=lambda: next(ticks))
        try:
            assert pool.queue == hashing_pool.QUEUE_PER_WORKER  # the cap, not the bound now
            await pool.hash("measured once")
            in_time = int(hashing_pool.QUEUE_SECONDS / 1.0)
            assert pool.capacity == 1 + in_time < 1 + pool.queue
            hasher.held = True
            admitted = [asyncio.ensure_future(pool.hash(f"p {i}")) for i in range(1 + in_time)]
            await anyio.sleep(0)
            with pytest.raises(RateLimited):
                pool.refuse_if_full()
            with pytest.raises(RateLimited):
                await pool.hash("one past the time bound")
            hasher.release.set()
            await asyncio.gather(*admitted)
            pool.refuse_if_full()  # room again: no refusal
        finally:
            hasher.release.set()
            pool.close()
        fixed = HashingPool(FAST, workers=1, queue=7, hasher=hasher, timer=lambda: next(ticks))
        try:
            await fixed.hash("measured")
            assert fixed.capacity == 8
        finally:
            fixed.close()

    anyio.run(main)


def test_a_hash_that_waits_for_the_cpu_does_not_shrink_the_queue() -> None:
    """The queue's time bound is taken from a hash's CPU time, not its wall time: a burst
    that slows each hash down (contention) must not shrink the queue that holds it. A hash
    held 0.5 s off the CPU measures near nothing, and the queue keeps its cap."""

    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=1, hasher=hasher)
        try:
            waiting = asyncio.ensure_future(pool.hash("held off the CPU"))
            await anyio.to_thread.run_sync(hasher.wait_entered, 1)
            await anyio.sleep(0.5)
            hasher.release.set()
            await waiting
            assert pool.capacity == 1 + pool.queue == 1 + hashing_pool.QUEUE_PER_WORKER
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_a_follow_up_hash_is_admitted_past_a_full_pool() -> None:
    """Livelock under a flood: an operation of two hashes (a reset: the policy's verify,
    then the new hash) whose first was admitted must get its second, or new arrivals take
    every slot and no operation ends. A new hash is refused; a follow-up gets in."""

    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=1, queue=1, hasher=hasher)
        try:
            first = [asyncio.ensure_future(pool.hash(f"p {i}")) for i in range(2)]
            await anyio.sleep(0)
            with pytest.raises(RateLimited):
                await pool.hash("a new operation")
            follow = asyncio.ensure_future(pool.hash("the second hash", follow_up=True))
            await anyio.sleep(0)
            assert pool.in_flight == 3
            hasher.release.set()
            assert (await follow).startswith("$argon2id$")
            await asyncio.gather(*first)
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_runs_off_the_event_loop_and_holds_no_worker_thread() -> None:
    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=1, queue=1, hasher=hasher)
        try:
            waiting = asyncio.ensure_future(pool.hash("a password"))
            await anyio.to_thread.run_sync(hasher.wait_entered, 1)
            # Awaited, not waited for in a thread: anyio's worker threads are all free.
            assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
            hasher.release.set()
            await waiting
            assert threading.get_ident() not in hasher.threads
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_slot_held_until_the_hash_ends_not_until_its_caller_gives_up() -> None:
    """A caller that goes away (a closed connection) does not free capacity that its hash
    still uses: the bound counts the work really queued."""

    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=1, queue=0, hasher=hasher)
        try:
            with anyio.move_on_after(0.05):
                await pool.hash("abandoned")
            await anyio.to_thread.run_sync(hasher.wait_entered, 1)
            assert pool.in_flight == 1
            with pytest.raises(RateLimited):
                await pool.hash("still full")
            hasher.release.set()
            while pool.in_flight:
                await anyio.sleep(0.01)
            assert (await pool.hash("room again")).startswith("$argon2id$")
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_default_sizes_from_the_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, workers in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(hashing_pool, "cores", lambda n=cores: n)
        pool = HashingPool(FAST)
        try:
            assert (pool.workers, pool.queue) == (workers, 64 * workers)
        finally:
            pool.close()


def test_a_queued_hash_whose_caller_left_is_dropped() -> None:
    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=1, queue=1, hasher=hasher)
        try:
            running = asyncio.ensure_future(pool.hash("running"))
            await anyio.to_thread.run_sync(hasher.wait_entered, 1)
            with anyio.move_on_after(0.05):
                await pool.hash("queued, then abandoned")
            assert pool.in_flight == 1  # the queued one gave its slot back
            hasher.release.set()
            await running
            assert hasher.entered == 1  # and it never ran
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


def test_busy_waiting_and_refusals_are_published() -> None:
    """relatch_hashing_pool_busy / _waiting follow the hashes in flight; a refusal counts
    under the limit name hashing_pool."""
    refusals = metrics.RATE_LIMIT_REFUSALS.labels("hashing_pool")

    async def main() -> None:
        hasher = HeldHasher()
        pool = HashingPool(FAST, workers=2, queue=3, hasher=hasher)
        try:
            admitted = [asyncio.ensure_future(pool.hash(f"password {i}")) for i in range(5)]
            await anyio.sleep(0)
            assert (metrics.HASHING_BUSY._value.get(), metrics.HASHING_WAITING._value.get()) == (
                2,
                3,
            )
            before = refusals._value.get()
            with pytest.raises(RateLimited):
                await pool.hash("one too many")
            assert refusals._value.get() == before + 1
            hasher.release.set()
            await asyncio.gather(*admitted)
            assert (metrics.HASHING_BUSY._value.get(), metrics.HASHING_WAITING._value.get()) == (
                0,
                0,
            )
        finally:
            hasher.release.set()
            pool.close()

    anyio.run(main)


class NiceHasher(HeldHasher):
    """Reports, as its "hash", the nice value of the thread the hash runs on."""

    def hash(self, password: str) -> str:
        return str(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priority here")
def test_hash_threads_run_at_a_lower_priority_than_the_requests() -> None:
    """Hash threads yield (issue 12): their nice value is raised by `nice` above the
    thread that serves requests, so where they share a core the requests run first. The
    owner's side: with `nice=0` a hash thread runs like any other."""
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def nice_of_a_hash_thread(nice: int) -> int:
        pool = HashingPool(FAST, workers=1, queue=1, hasher=NiceHasher(), nice=nice)
        try:
            return int(await pool.hash("x"))
        finally:
            pool.close()

    assert anyio.run(nice_of_a_hash_thread, 10) == min(19, caller + 10)
    assert anyio.run(nice_of_a_hash_thread, hashing_pool.DEFAULT_NICE) > caller
    assert anyio.run(nice_of_a_hash_thread, 0) == caller
    # The caller itself is untouched: only the pool's threads yield.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller
