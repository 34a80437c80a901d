"""Who sent a request, as the services see it (for limits and the audit trail)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMeta:
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


CLI = RequestMeta(client_ip=None, user_agent="relatch-cli", request_id=None)
