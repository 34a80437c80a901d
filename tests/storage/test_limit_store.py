"""The limiter's stores: one contract, run on SQLite, PostgreSQL and Redis, each for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from relatch import workers
from relatch.app import build, build_limits
from relatch.core import limits
from relatch.core.errors import RateLimited
from relatch.core.limits import Rule
from relatch.services.ports import LimitStore
from relatch.storage import migrate
from relatch.storage.db import make_engine, make_sessionmaker, transaction
from relatch.storage.limits_redis import RedisLimitStore
from relatch.storage.limits_sql import SqlLimitStore
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.limit_backends import BACKENDS, backend_settings

NOW = 1_767_268_800  # an hour boundary: 2026-01-01 12:00 UTC


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LimitStore]:
    with backend_settings(str(request.param), tmp_path) as values:
        settings = make_settings(tmp_path, values.pop("database_url"), **values)
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        limiter = build_limits(settings, make_sessionmaker(engine))
        try:
            yield limiter.store
        finally:
            limiter.close()
            engine.dispose()


def rule(text: str) -> Rule:
    return Rule("test", limits.parse(text))


def test_trips_at_its_number_and_releases_after_its_window(store: LimitStore) -> None:
    r = rule("3/15m")
    for _ in range(3):
        assert store.acquire(limits.buckets(r, "k", NOW)) == []
    full = store.acquire(limits.buckets(r, "k", NOW + 899))
    assert [b.seconds for b in full] == [900]
    assert limits.refusal(full, NOW + 899).retry_after == 1
    assert store.acquire(limits.buckets(r, "k", NOW + 900)) == []  # the next window


def test_growing_windows(store: LimitStore) -> None:
    r = rule("2/1m,3/1h")
    t = NOW
    assert store.acquire(limits.buckets(r, "k", t)) == []
    assert store.acquire(limits.buckets(r, "k", t)) == []
    assert [b.seconds for b in store.acquire(limits.buckets(r, "k", t + 59))] == [60]
    assert store.acquire(limits.buckets(r, "k", t + 60)) == []  # minute over: one more
    full = store.acquire(limits.buckets(r, "k", t + 120))
    assert [b.seconds for b in full] == [3600]  # now the hour holds it
    assert limits.refusal(full, t + 120).retry_after == 3600 - 120
    assert store.acquire(limits.buckets(r, "k", t + 3600)) == []


def test_refused_request_counts_nothing(store: LimitStore) -> None:
    short, long = rule("1/1m"), rule("5/1h")
    both = limits.buckets(short, "a", NOW) + limits.buckets(long, "b", NOW)
    assert store.acquire(both) == []
    for _ in range(3):
        assert store.acquire(both) != []  # `a` is full: `b` must not count these
    for i in range(4):  # `b` still has its 4 remaining
        assert store.acquire(limits.buckets(long, "b", NOW + i)) == []
    assert store.acquire(limits.buckets(long, "b", NOW)) != []


def test_keys_are_independent(store: LimitStore) -> None:
    r = rule("1/1h")
    assert store.acquire(limits.buckets(r, "one", NOW)) == []
    assert store.acquire(limits.buckets(r, "two", NOW)) == []
    assert store.acquire(limits.buckets(r, "one", NOW)) != []


def test_release_gives_a_slot_back(store: LimitStore) -> None:
    r = rule("2/1h")
    taken = limits.buckets(r, "k", NOW)
    assert store.acquire(taken) == []
    assert store.acquire(taken) == []
    assert store.acquire(taken) != []
    store.release(taken)
    assert store.acquire(taken) == []
    store.release(limits.buckets(r, "never-used", NOW))  # harmless, never negative
    fresh = limits.buckets(r, "never-used", NOW)
    assert store.acquire(fresh) == [] and store.acquire(fresh) == []
    assert store.acquire(fresh) != []


def test_prune_drops_only_ended_windows(store: LimitStore) -> None:
    r = rule("1/1m")
    assert store.acquire(limits.buckets(r, "old", NOW)) == []
    assert store.acquire(limits.buckets(r, "new", NOW + 60)) == []
    # The database drops the ended row; Redis expires keys by itself (nothing to do).
    assert store.prune(NOW + 60) == (1 if isinstance(store, SqlLimitStore) else 0)
    assert store.acquire(limits.buckets(r, "new", NOW + 60)) != []  # kept
    assert store.prune(NOW + 60) == 0


def test_worker_prunes_at_most_once_a_minute(tmp_path: Path) -> None:
    with backend_settings("sqlite", tmp_path) as values:
        settings = make_settings(tmp_path, values.pop("database_url"), **values)
        start = datetime.fromtimestamp(NOW, UTC)
        clock = FakeClock(start)
        svc = build(settings, clock=clock)
        migrate.upgrade(svc.engine)
        (prune,) = [job for job in workers.periodic_prunes() if job.name == "limit prune"]
        try:
            r = rule("1/1m")
            assert svc.limits.store.acquire(limits.buckets(r, "a", NOW)) == []
            assert prune.run(svc) == 0  # nothing ended yet
            assert svc.limits.store.acquire(limits.buckets(r, "b", NOW + 60)) == []
            clock.now = start + timedelta(seconds=59)
            assert prune.run(svc) == 0  # throttled
            clock.now = start + timedelta(seconds=120)
            assert prune.run(svc) == 2
            # A window that has ended waits for the next turn of the throttle.
            assert svc.limits.store.acquire(limits.buckets(r, "c", NOW + 60)) == []
            clock.now = start + timedelta(seconds=150)
            assert prune.run(svc) == 0  # throttled, though "c" ended
            clock.now = start + timedelta(seconds=180)
            assert prune.run(svc) == 1
        finally:
            svc.close()


def test_parallel_acquires_never_overshoot(store: LimitStore) -> None:
    """Twenty threads (own connections) race for five slots: exactly five win."""
    r = rule("5/1h,7/1d")
    barrier = threading.Barrier(20)

    def attempt(_: int) -> bool:
        barrier.wait()
        return store.acquire(limits.buckets(r, "race", NOW)) == []

    with ThreadPoolExecutor(20) as pool:
        wins = list(pool.map(attempt, range(20)))
    assert wins.count(True) == 5


def test_redis_outage_fails_closed_with_429() -> None:
    """Brute force: an unreachable Redis must not switch the limits off (nor give a 5xx)."""
    store = RedisLimitStore("redis://127.0.0.1:1/0", "relatch-test:")  # nothing listens
    try:
        with pytest.raises(RateLimited) as caught:
            store.acquire(limits.buckets(rule("5/1m"), "k", NOW))
        assert caught.value.retry_after == 5
        store.release(limits.buckets(rule("5/1m"), "k", NOW))  # logged, not raised
    finally:
        store.close()


def test_reports_the_buckets_a_hit_fills(store: LimitStore) -> None:
    """`filled`: the windows this very hit brought to their count (the "someone is
    guessing" notice, services/limits.py); a refused hit counts nothing and fills nothing."""
    r = rule("2/1m,3/1h")
    seen: list[list[int]] = []
    for t in (NOW, NOW + 1, NOW + 60, NOW + 61):
        filled: list[limits.Bucket] = []
        store.acquire(limits.buckets(r, "k", t), filled)
        seen.append(sorted(b.seconds for b in filled))
    # 1st: nothing full; 2nd fills the minute; 3rd (next minute) fills the hour; 4th refused.
    assert seen == [[], [60], [3600], []]


@pytest.fixture(params=BACKENDS)
def store_and_sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[LimitStore, sessionmaker[Session]]]:
    with backend_settings(str(request.param), tmp_path) as values:
        settings = make_settings(tmp_path, values.pop("database_url"), **values)
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        sessions = make_sessionmaker(engine)
        limiter = build_limits(settings, sessions)
        try:
            yield limiter.store, sessions
        finally:
            limiter.close()
            engine.dispose()


def test_hits_and_give_backs_inside_a_transaction_follow_its_outcome(
    store_and_sessions: tuple[LimitStore, sessionmaker[Session]],
) -> None:
    """Owner side of a group commit retried item by item (storage/group_commit.py): a hit
    counted in a transaction that rolls back is not counted, and a give-back in one is not
    given, in every store, Redis included (its counters live outside the transaction)."""
    store, sessions = store_and_sessions
    taken = limits.buckets(rule("2/1h"), "k", NOW)
    with pytest.raises(RuntimeError), transaction(sessions) as s:
        assert store.acquire(taken, within=s) == []
        raise RuntimeError("the batch failed")
    assert store.acquire(taken) == [] and store.acquire(taken) == []  # both still fit
    assert store.acquire(taken) != []
    with pytest.raises(RuntimeError), transaction(sessions) as s:
        store.release(taken, within=s)
        raise RuntimeError("the sign-in's write failed")
    assert store.acquire(taken) != []  # nothing was given back
    with transaction(sessions) as s:
        store.release(taken, within=s)
    assert store.acquire(taken) == []  # given back once committed
    with transaction(sessions) as s:
        assert store.acquire(taken, within=s) != []  # full: refused, nothing to take back
