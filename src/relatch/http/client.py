"""Facts about the caller: client IP and request id."""

from __future__ import annotations

from fastapi import Request

from relatch.services.context import Services
from relatch.services.meta import RequestMeta


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_meta(request: Request) -> RequestMeta:
    return RequestMeta(
        client_ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:256] or None,
        request_id=getattr(request.state, "request_id", None),
    )


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
