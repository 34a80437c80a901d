"""The client IP behind trusted reverse proxies (X-Forwarded-For), pure.

Spoofing: anyone can send `X-Forwarded-For: 1.2.3.4`. The header is believed only when
the socket peer is a configured proxy, and then only up to the first hop that is not a
trusted proxy, read from the right (the end each proxy appends to). Whatever a client
wrote to the left of that cannot change its identity for limits or the audit trail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """`10.0.0.1, 192.168.0.0/16, ::1` -> networks; ValueError on a bad entry."""
    if not text:
        return ()
    out: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            out.append(ipaddress.ip_network(part, strict=False))
    return tuple(out)


def parse_address(text: str) -> Address | None:
    """An address from a header entry (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address | None, networks: Sequence[Network]) -> bool:
    return addr is not None and any(addr in net for net in networks)


def is_trusted(peer: str, networks: Sequence[Network]) -> bool:
    """Whether the socket peer is a configured proxy (its X-Forwarded-For is believed)."""
    return _trusted(parse_address(peer), networks)


def client_ip(
    peer: str | None, forwarded: Iterable[str], networks: Sequence[Network]
) -> str | None:
    """The peer, or the right-most untrusted address of the X-Forwarded-For chain.

    `forwarded` is every X-Forwarded-For header value, in the order received.
    """
    if peer is None:
        return None
    peer_addr = parse_address(peer)
    if not _trusted(peer_addr, networks):
        return str(peer_addr) if peer_addr is not None else peer
    chain = [hop for value in forwarded for hop in value.split(",") if hop.strip()]
    client: Address | None = peer_addr
    for hop in reversed(chain):
        addr = parse_address(hop)
        if addr is None:
            # A trusted proxy passed on garbage: stop at the last address we can vouch for.
            break
        client = addr
        if not _trusted(addr, networks):
            break
    return str(client)
