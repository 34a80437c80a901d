"""Token revocation (RFC 7009) and introspection (RFC 7662), as Authlib endpoints."""

from __future__ import annotations

from typing import Any, ClassVar

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import ANY_METHOD, SECRET_METHODS, Client, Token


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    # Public clients may revoke their own tokens: they are identified by client_id.
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(ANY_METHOD)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return store.find_token(self.server.svc, token_string, token_type_hint)

    def revoke_token(self, token: Token, request: Any) -> None:
        # Access and refresh token are one row: revoking either ends both (RFC 7009 2.1).
        store.revoke(self.server.svc, token.id)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    # Only confidential clients introspect: a public client could probe tokens.
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(SECRET_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return store.find_token(self.server.svc, token_string, token_type_hint)

    def check_permission(self, token: Token, client: Client, request: Any) -> bool:
        # Token scanning across clients: a client learns only about its own tokens;
        # others get {"active": false}, the same as for an unknown token.
        return token.check_client(client)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "active": True,
            "client_id": token.client.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.scope,
            "iat": int(token.issued_at.timestamp()),
            "iss": self.server.svc.settings.issuer,
        }
        if token.expires_at is not None:
            payload["exp"] = int(token.expires_at.timestamp())
        if token.user is not None:
            payload["sub"] = str(token.user.id)
            payload["username"] = token.user.username
        return payload
