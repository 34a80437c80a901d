"""Who sent a request, as the services see it (for limits and the audit trail)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestMeta:
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    # The device id of a verified device cookie (or one minted for the pages to set after
    # a success); never stored in clear (services/known_clients.py).
    device: str | None = field(default=None, repr=False)


CLI = RequestMeta(client_ip=None, user_agent="relatch-cli", request_id=None)
