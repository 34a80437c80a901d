"""Facts about the caller: client IP, device cookie and request id."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache

from fastapi import Request
from starlette.responses import Response

from relatch.auth import cookies
from relatch.core import devices, forwarding
from relatch.core.meta import RequestMeta
from relatch.services.context import Services

log = logging.getLogger(__name__)

NO_PEER = "unknown-peer"
# Peers already warned about for an ignored X-Forwarded-For: once each, and a bounded set
# so that a flood of spoofing peers cannot grow memory or the log without end.
MAX_WARNED_PEERS = 256
_warned_peers: set[str] = set()
_warned_lock = threading.Lock()


def client_ip(request: Request) -> str:
    """The socket peer, or X-Forwarded-For when the peer is a trusted proxy.

    Spoofing: a header from anyone not in RELATCH_TRUSTED_PROXIES changes nothing (limits
    and the audit trail key on this address); see core/forwarding.py.
    """
    # Brute force: an HTTP caller without a peer address (a unix socket, some ASGI
    # servers) must not escape the per-IP limits; all such callers share one bucket.
    # Only the CLI, which is no HTTP caller, has no client IP at all.
    peer = request.client.host if request.client and request.client.host else NO_PEER
    networks = _networks(request.app.state.settings.trusted_proxies)
    forwarded = request.headers.getlist("x-forwarded-for")
    if forwarded and peer != NO_PEER and not forwarding.is_trusted(peer, networks):
        _warn_untrusted_forwarding(peer)
    return forwarding.client_ip(peer, forwarded, networks) or NO_PEER


def _warn_untrusted_forwarding(peer: str) -> None:
    """Misconfiguration: behind a proxy missing from RELATCH_TRUSTED_PROXIES every client
    looks like the proxy, so per-IP limits and known networks (services/known_clients.py)
    lump everyone together. Said once per peer: a spoofing client cannot flood the log."""
    with _warned_lock:
        if peer in _warned_peers or len(_warned_peers) >= MAX_WARNED_PEERS:
            return
        _warned_peers.add(peer)
    log.warning(
        "X-Forwarded-For from %s ignored: that peer is not in RELATCH_TRUSTED_PROXIES "
        "(behind a reverse proxy, list it there, or every client looks like the proxy)",
        peer,
    )


@lru_cache(maxsize=8)
def _networks(text: str | None) -> tuple[forwarding.Network, ...]:
    return forwarding.parse_networks(text)


def device_id(request: Request) -> str | None:
    """The device id of a valid device cookie (core/devices.py), or None."""
    return devices.read(services(request).keys, request.cookies.get(cookies.DEVICE.name))


def request_meta(request: Request, *, new_device: bool = False) -> RequestMeta:
    """The caller as the services see it. `new_device`: for the pages that set the device
    cookie after a success; a browser without a valid one gets a fresh id to remember."""
    device = device_id(request)
    if device is None and new_device:
        device = devices.new_id()
    return RequestMeta(
        client_ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:256] or None,
        request_id=getattr(request.state, "request_id", None),
        device=device,
    )


def set_device_cookie(request: Request, response: Response, meta: RequestMeta) -> None:
    """After a successful sign-in or reset on a page: the device cookie (OWASP device
    cookies), good as long as the client stays known (RELATCH_KNOWN_CLIENT_DAYS).

    Its attributes: auth/cookies.py. It grants nothing by itself: only a budget of its own
    on the accounts it signed in to.
    """
    if meta.device is None:
        return
    value = devices.cookie_value(services(request).settings.secret, meta.device)
    cookies.set_cookie(request, response, cookies.DEVICE, value)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
