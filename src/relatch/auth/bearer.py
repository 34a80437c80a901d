"""Bearer access tokens (RFC 6750) through Authlib's ResourceProtector: the `userinfo`
endpoint and the `Authorization: Bearer` scheme of the Edge Impulse operations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from fastapi import Request

from relatch.core.errors import NotAuthenticated
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import Token


@dataclass(frozen=True)
class HeadersOnly:
    headers: Mapping[str, str]


class AccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, svc: Services) -> None:
        super().__init__()
        self.svc = svc

    def authenticate_token(self, token_string: str) -> Token | None:
        token = store.find_token(self.svc, token_string.strip(), "access_token")
        # A refresh token is no access token (it would outlive every access TTL).
        return token if token is not None and token.kind == "access_token" else None


def protector(svc: Services) -> ResourceProtector:
    rp = ResourceProtector()
    rp.register_token_validator(AccessTokenValidator(svc))
    return rp


def validate(svc: Services, headers: Mapping[str, str], scopes: list[str] | None) -> Token:
    """The live access token of these headers, or Authlib's OAuth2Error (401/403)."""
    token: Token = protector(svc).validate_request(scopes, HeadersOnly(headers))
    return token


def oauth_bearer(svc: Services, request: Request) -> Account | None:
    """Scheme for auth/dependencies.py: None when no bearer token is presented."""
    auth = request.headers.get("authorization")
    if not auth or auth.split(None, 1)[0].lower() != "bearer":
        return None
    try:
        token = validate(svc, request.headers, None)
    except OAuth2Error as exc:
        raise NotAuthenticated() from exc
    # Client-credentials tokens act for a client, not a person: no user operation.
    if token.user is None:
        raise NotAuthenticated()
    return Account.of(token.user)
