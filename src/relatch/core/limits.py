"""Rate limits, pure: the `COUNT/WINDOW[,COUNT/WINDOW...]` format, fixed windows, buckets.

A limit is one or more windows ("3/15m,10/1h"); a request is allowed while every window
still has room. Several windows give growing delays: once the short window is full the
caller waits for it, once the long one is full the wait grows to the long window.

Windows are fixed and aligned on the epoch (a 15m window starts at :00, :15, :30, :45), so
every process and every backend computes the same bucket from the same clock without
talking to each other. A burst at a boundary can reach twice a short window's count;
the longer windows of the same limit bound that.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from relatch.core import keyed
from relatch.core.errors import RateLimited

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
MAX_WINDOW = 30 * 86400
IPV6_PREFIX = 64
IPV4_NETWORK_PREFIX = 24


@dataclass(frozen=True, order=True)
class Window:
    count: int
    seconds: int


@dataclass(frozen=True)
class Rule:
    """A named limit; no windows means `off`."""

    name: str
    windows: tuple[Window, ...]

    @property
    def off(self) -> bool:
        return not self.windows


@dataclass(frozen=True, order=True)
class Bucket:
    """One counter: (key digest, window length, window start); full at `limit`."""

    key: str
    seconds: int
    start: int
    limit: int
    # The rule's name (a label of the refusal metric); not part of the counter's identity.
    rule: str = field(default="", compare=False)

    @property
    def ends(self) -> int:
        return self.start + self.seconds


def parse(text: str) -> tuple[Window, ...]:
    """`3/15m,10/1h` -> windows, shortest first; `off` (or empty) -> no windows.

    ValueError on anything else, so a typo in a setting stops the process at start-up
    instead of silently disabling a limit.
    """
    text = text.strip()
    if text.lower() in ("off", ""):
        return ()
    windows: list[Window] = []
    for part in text.split(","):
        found = _WINDOW_RE.match(part)
        if not found:
            raise ValueError(f"bad limit {part.strip()!r}: use COUNT/WINDOW like 3/15m, or off")
        count, amount, unit = int(found.group(1)), found.group(2), found.group(3)
        seconds = int(amount or "1") * UNITS[unit]
        if count < 1 or seconds < 1 or seconds > MAX_WINDOW:
            raise ValueError(f"bad limit {part.strip()!r}: count >= 1, window 1s to 30d")
        windows.append(Window(count, seconds))
    if len({w.seconds for w in windows}) != len(windows):
        raise ValueError(f"bad limit {text!r}: one count per window length")
    return tuple(sorted(windows, key=lambda w: w.seconds))


def key_digest(secret: bytes, rule: str, subject: str) -> str:
    """The stored key: a keyed digest, so the counter store holds no address or IP in clear."""
    return keyed.digest(secret, keyed.RATE_LIMIT, rule, subject)[:40]


def buckets(rule: Rule, key: str, now: int) -> list[Bucket]:
    """The buckets `now` (epoch seconds) falls in, one per window of the rule."""
    return [Bucket(key, w.seconds, now - now % w.seconds, w.count, rule.name) for w in rule.windows]


def refusal(full: list[Bucket], now: int) -> RateLimited:
    """Retry-After: until every full window has ended."""
    return RateLimited(max(b.ends for b in full) - now)


def ip_subject(ip: str) -> str:
    """What an IP limit is keyed on: the IPv4 address, or the IPv6 /64.

    Evasion: one IPv6 subscriber usually holds a whole /64 (RFC 6177), so keying on the
    full address would give an attacker 2^64 fresh budgets.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, IPV6_PREFIX), strict=False))
    return str(addr)


def network_subject(ip: str) -> str | None:
    """The network a known client is remembered by: the IPv4 /24 or the IPv6 /64; None
    when `ip` is no address (a unix socket peer, the CLI): such a caller is never known.

    Carrier NAT and office networks put many people behind one /24, so a known network is
    shared by everyone in it; its budget is smaller than a device cookie's for that reason.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((addr, IPV6_PREFIX), strict=False))
        addr = addr.ipv4_mapped
    return str(ipaddress.IPv4Network((addr, IPV4_NETWORK_PREFIX), strict=False))
