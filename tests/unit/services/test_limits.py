"""Limits' decisions over a fake store: which buckets each use case asks for."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from relatch.core.errors import RateLimited
from relatch.core.limits import Bucket
from relatch.services.limits import DEVICE, NETWORK, KnownClient, Limits, Policy
from relatch.settings import Settings

NOW = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


class FakeStore:
    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.acquired: list[list[Bucket]] = []
        self.released: list[list[Bucket]] = []

    def acquire(
        self,
        buckets: Sequence[Bucket],
        filled: list[Bucket] | None = None,
        within: object = None,
    ) -> list[Bucket]:
        if self.full:
            return list(buckets)
        self.acquired.append(list(buckets))
        return []

    def release(self, buckets: Sequence[Bucket], within: object = None) -> None:
        self.released.append(list(buckets))

    def prune(self, now: int) -> int:
        return 0

    def close(self) -> None:
        pass


def limits(store: FakeStore, **values: str) -> Limits:
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return Limits(Policy.from_settings(settings), store, b"k" * 32)


def test_reset_request_asks_for_address_and_ip_windows() -> None:
    store = FakeStore()
    limits(store).reset_requested("a@example.com", "192.0.2.1", NOW)
    (buckets,) = store.acquired
    assert sorted((b.seconds, b.limit) for b in buckets) == [(900, 3), (3600, 10), (3600, 30)]


def test_no_client_ip_skips_the_ip_limits() -> None:
    store = FakeStore()
    limits(store).reset_requested("a@example.com", None, NOW)
    assert sorted((b.seconds, b.limit) for b in store.acquired[0]) == [(900, 3), (3600, 10)]
    limits(store).signup(None, NOW)
    assert store.acquired[1] == []


def test_off_asks_for_nothing() -> None:
    store = FakeStore(full=True)
    limits(store, limit_signup_per_ip="off").signup("192.0.2.1", NOW)  # no refusal


def test_refusal_carries_retry_after() -> None:
    store = FakeStore(full=True)
    with pytest.raises(RateLimited) as caught:
        limits(store).guess("a@example.com", "192.0.2.1", NOW)
    # 10/15m, 30/1h, 100/1d per account and 50/15m, 200/1h, 500/1d per IP: all "full",
    # so the wait is until the end of the day window.
    assert caught.value.retry_after == 86400 - (12 * 3600 + 5 * 60)


def test_a_success_gives_its_slot_back_once() -> None:
    store = FakeStore()
    guess = limits(store).guess("a@example.com", "192.0.2.1", NOW)
    guess.succeeded()
    guess.succeeded()
    assert store.released == [store.acquired[0]]


def test_ipv6_neighbours_share_one_budget() -> None:
    store = FakeStore()
    lim = limits(store, limit_failures_per_account="off")
    lim.guess("x", "2001:db8:1:2::1", NOW)
    lim.guess("y", "2001:db8:1:2::ffff", NOW)
    lim.guess("z", "2001:db8:1:3::1", NOW)
    keys = [{b.key for b in buckets} for buckets in store.acquired]
    assert keys[0] == keys[1] != keys[2]


def test_bad_setting_stops_start_up() -> None:
    with pytest.raises(ValueError, match="bad limit"):
        Settings(_env_file=None, limit_reset_per_ip="30 per hour")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8,proxy.local")  # type: ignore[call-arg]


def windows(buckets: list[Bucket]) -> list[tuple[int, int]]:
    return sorted((b.seconds, b.limit) for b in buckets)


def test_unknown_clients_share_the_account_budget_and_the_ip_one() -> None:
    store = FakeStore()
    limits(store).guess("a@example.com", "192.0.2.1", NOW)
    assert windows(store.acquired[0]) == [
        (900, 10),
        (900, 50),
        (3600, 30),
        (3600, 200),
        (86400, 100),
        (86400, 500),
    ]


def test_a_known_device_spends_only_its_own_budget() -> None:
    store = FakeStore()
    known = KnownClient(DEVICE, "device\x00a@example.com\x00id")
    limits(store).guess("a@example.com", "192.0.2.1", NOW, known)
    assert windows(store.acquired[0]) == [(900, 5), (86400, 20)]


def test_a_known_network_spends_its_own_budget_and_the_ip_one() -> None:
    store = FakeStore()
    known = KnownClient(NETWORK, "network\x00a@example.com\x00192.0.2.0/24")
    limits(store).guess("a@example.com", "192.0.2.1", NOW, known)
    assert windows(store.acquired[0]) == [
        (900, 3),
        (900, 50),
        (3600, 200),
        (86400, 10),
        (86400, 500),
    ]


def test_code_checks_spend_only_the_ip_budget() -> None:
    store = FakeStore()
    limits(store).code_guess("192.0.2.1", NOW)
    assert windows(store.acquired[0]) == [(900, 50), (3600, 200), (86400, 500)]
    # A known device skips it, as for passwords (5 tries per code still bound it).
    limits(store).code_guess("192.0.2.1", NOW, KnownClient(DEVICE, "d"))
    assert store.acquired[1] == []


def test_a_known_client_asks_for_codes_from_its_own_bucket() -> None:
    store = FakeStore()
    device = KnownClient(DEVICE, "device\x00a@example.com\x00id")
    network = KnownClient(NETWORK, "network\x00a@example.com\x00192.0.2.0/24")
    limits(store).reset_requested("a@example.com", "192.0.2.1", NOW, device)
    limits(store).reset_requested("a@example.com", "192.0.2.1", NOW, network)
    assert windows(store.acquired[0]) == [(900, 3), (86400, 10)]
    assert windows(store.acquired[1]) == [(900, 3), (3600, 30), (86400, 10)]
