"""Device cookies (core/devices.py): signed ids, refused when forged or malformed."""

from __future__ import annotations

import pytest

from relatch.core import devices

KEY, OLD = b"k" * 32, b"o" * 32


def test_round_trip_and_rotation() -> None:
    device = devices.new_id()
    assert devices.read([KEY], devices.cookie_value(KEY, device)) == device
    # Key rotation: a cookie signed with a fallback key still reads.
    assert devices.read([KEY, OLD], devices.cookie_value(OLD, device)) == device
    assert devices.read([KEY], devices.cookie_value(OLD, device)) is None
    assert devices.new_id() != device


@pytest.mark.parametrize(
    "value",
    [None, "", "nonsense", "a.b", "x" * 22 + ".", "é" * 22 + ".abc", "x" * 22 + "." + "A" * 500],
)
def test_malformed_values_are_no_device(value: str | None) -> None:
    assert devices.read([KEY], value) is None


def test_a_forged_mac_or_a_changed_id_is_no_device() -> None:
    device = devices.new_id()
    value = devices.cookie_value(KEY, device)
    _, _, mac = value.partition(".")
    assert devices.read([KEY], f"{device}.{'A' * len(mac)}") is None
    other = ("A" if device[0] != "A" else "B") + device[1:]
    assert devices.read([KEY], f"{other}.{mac}") is None
