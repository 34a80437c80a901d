"""X-Forwarded-For is believed only from trusted proxies (core/forwarding.py)."""

from __future__ import annotations

import pytest

from relatch.core.forwarding import client_ip, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 192.168.1.1, ::1")


def test_untrusted_peer_ignores_the_header() -> None:
    assert client_ip("203.0.113.9", ["1.2.3.4"], PROXIES) == "203.0.113.9"
    assert client_ip("203.0.113.9", ["1.2.3.4"], ()) == "203.0.113.9"


def test_trusted_peer_gives_the_right_most_untrusted_hop() -> None:
    # The client forged "6.6.6.6"; the real client is the hop our proxy appended.
    assert client_ip("10.0.0.2", ["6.6.6.6, 198.51.100.4"], PROXIES) == "198.51.100.4"
    # A chain of trusted proxies is walked through.
    assert client_ip("10.0.0.2", ["6.6.6.6, 198.51.100.4, 10.1.1.1"], PROXIES) == "198.51.100.4"
    # Several headers are one list, in order.
    assert client_ip("::1", ["6.6.6.6", "198.51.100.4, 192.168.1.1"], PROXIES) == "198.51.100.4"


def test_trusted_peer_without_header_is_the_client() -> None:
    assert client_ip("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert client_ip("10.0.0.2", ["10.0.0.3, 10.0.0.4"], PROXIES) == "10.0.0.3"


def test_garbage_hop_stops_at_the_last_vouched_address() -> None:
    assert client_ip("10.0.0.2", ["198.51.100.4, unknown"], PROXIES) == "10.0.0.2"


@pytest.mark.parametrize(
    ("hop", "expected"),
    [("198.51.100.4:5555", "198.51.100.4"), ("[2001:db8::1]:443", "2001:db8::1")],
)
def test_ports_are_dropped(hop: str, expected: str) -> None:
    assert client_ip("10.0.0.2", [hop], PROXIES) == expected


def test_peer_forms() -> None:
    assert client_ip(None, ["1.2.3.4"], PROXIES) is None
    assert client_ip("testclient", ["1.2.3.4"], PROXIES) == "testclient"
    assert client_ip("::ffff:10.0.0.2", ["198.51.100.4"], PROXIES) == "198.51.100.4"


def test_bad_proxy_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8, not-an-ip")
    assert parse_networks(None) == () and parse_networks(" ") == ()
