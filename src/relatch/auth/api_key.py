"""The `x-api-key` scheme (ApiKeyAuthentication in the seed)."""

from __future__ import annotations

from fastapi import Request

from relatch.services import api_keys
from relatch.services.account import Account
from relatch.services.context import Services


def api_key_header(svc: Services, request: Request) -> Account | None:
    """None when no key is presented; NotAuthenticated for a bad, unknown or revoked key."""
    key = request.headers.get("x-api-key")
    return api_keys.user_from_key(svc, key) if key else None
