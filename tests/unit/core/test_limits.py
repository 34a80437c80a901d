"""The limit format, fixed windows and IP keys (core/limits.py)."""

from __future__ import annotations

import pytest

from relatch.core import limits
from relatch.core.limits import Bucket, Rule, Window


def test_parse_several_windows_shortest_first() -> None:
    assert limits.parse("10/1h, 3/15m") == (Window(3, 900), Window(10, 3600))
    assert limits.parse("100/1d") == (Window(100, 86400),)
    assert limits.parse("5/30s") == (Window(5, 30),)
    assert limits.parse("5/m") == (Window(5, 60),)


@pytest.mark.parametrize("text", ["off", "OFF", " off ", ""])
def test_off_means_no_windows(text: str) -> None:
    assert limits.parse(text) == ()
    assert Rule("x", limits.parse(text)).off


@pytest.mark.parametrize(
    "text", ["3", "3/15", "3/15x", "0/1h", "-1/1h", "3/0m", "a/1h", "3/1h,", "3/1h,4/60m", "1/31d"]
)
def test_bad_formats_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad limit"):
        limits.parse(text)


def test_buckets_are_aligned_fixed_windows() -> None:
    rule = Rule("r", limits.parse("3/15m,10/1h"))
    now = 1_767_268_800 + 14 * 60 + 59  # 12:14:59 on an hour boundary day
    b15, b1h = limits.buckets(rule, "k", now)
    assert (b15.start, b15.ends, b15.limit) == (now - 899, now + 1, 3)
    assert (b1h.start, b1h.limit) == (now - (14 * 60 + 59), 10)
    # One second later the short window is a new bucket; the hour one is the same.
    n15, n1h = limits.buckets(rule, "k", now + 1)
    assert n15.start == b15.ends and n1h == b1h


def test_refusal_waits_for_every_full_window() -> None:
    full = [Bucket("k", 900, 0, 3), Bucket("k", 3600, 0, 10)]
    assert limits.refusal(full, 100).retry_after == 3500
    assert limits.refusal(full[:1], 899).retry_after == 1


def test_key_digest_is_keyed_and_separates_rules() -> None:
    a = limits.key_digest(b"s1", "reset_per_ip", "192.0.2.1")
    assert a != limits.key_digest(b"s2", "reset_per_ip", "192.0.2.1")
    assert a != limits.key_digest(b"s1", "signup_per_ip", "192.0.2.1")
    assert "192.0.2.1" not in a and len(a) == 40


def test_ip_subject_groups_ipv6_by_64() -> None:
    assert limits.ip_subject("192.0.2.7") == "192.0.2.7"
    assert limits.ip_subject("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert limits.ip_subject("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limits.ip_subject("::ffff:192.0.2.7") == "192.0.2.7"
    assert limits.ip_subject("testclient") == "testclient"


def test_network_subject_is_the_ipv4_24_or_the_ipv6_64() -> None:
    assert limits.network_subject("192.0.2.7") == "192.0.2.0/24"
    assert limits.network_subject("192.0.2.250") == "192.0.2.0/24"
    assert limits.network_subject("::ffff:192.0.2.7") == "192.0.2.0/24"
    assert limits.network_subject("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    # No address (a unix socket peer, the CLI): never a known network.
    assert limits.network_subject("unknown-peer") is None
    assert limits.network_subject("testclient") is None
