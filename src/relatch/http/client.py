"""Facts about the caller: client IP and request id."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Request

from relatch.core import forwarding
from relatch.services.context import Services
from relatch.services.meta import RequestMeta

NO_PEER = "unknown-peer"


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
    forwarded = request.headers.getlist("x-forwarded-for") if networks else []
    return forwarding.client_ip(peer, forwarded, networks) or NO_PEER


@lru_cache(maxsize=8)
def _networks(text: str | None) -> tuple[forwarding.Network, ...]:
    return forwarding.parse_networks(text)


def secure_cookies(request: Request) -> bool:
    """Whether cookies set for this request get the Secure flag.

    Cookie theft over plain http (ASVS 5.0 3.3.1): behind a TLS-terminating proxy the app
    sees http (`relatch serve` does not trust proxy headers for the scheme), so the scheme
    of RELATCH_PUBLIC_URL, what browsers actually use, decides too.
    """
    public_url: str = request.app.state.settings.public_url
    return request.url.scheme == "https" or public_url.lower().startswith("https://")


def request_meta(request: Request) -> RequestMeta:
    return RequestMeta(
        client_ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:256] or None,
        request_id=getattr(request.state, "request_id", None),
    )


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
