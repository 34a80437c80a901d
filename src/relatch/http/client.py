"""Facts about the caller: client IP and request id."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Request

from relatch.core import forwarding
from relatch.services.context import Services
from relatch.services.meta import RequestMeta


def client_ip(request: Request) -> str | None:
    """The socket peer, or X-Forwarded-For when the peer is a trusted proxy.

    Spoofing: a header from anyone not in RELATCH_TRUSTED_PROXIES changes nothing (limits
    and the audit trail key on this address); see core/forwarding.py.
    """
    peer = request.client.host if request.client else None
    networks = _networks(request.app.state.settings.trusted_proxies)
    if not networks:
        return forwarding.client_ip(peer, (), ())
    return forwarding.client_ip(peer, request.headers.getlist("x-forwarded-for"), networks)


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
