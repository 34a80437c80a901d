"""Authlib's model mixins over Relatch rows: clients, authorization codes, tokens.

Plain, detached objects (no live database session): Authlib calls them from inside a
grant, and every write goes through oauth_repo.py in its own short transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list

from relatch.core import keyed
from relatch.core import oauth_digests as digests
from relatch.storage.models import User

GRANT_TYPES = ("authorization_code", "implicit", "password", "client_credentials", "refresh_token")
SCOPES = ("openid", "email", "profile")
# Client authentication (RFC 6749 2.3), the one list every grant and endpoint uses: a
# confidential client proves its secret one of SECRET_METHODS ways; a public client
# ("none") only names itself, and only where PKCE or its own tokens protect it.
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
PUBLIC_METHOD = "none"
ANY_METHOD = (*SECRET_METHODS, PUBLIC_METHOD)


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    name: str
    secret_digest: str | None
    redirect_uris: list[str]
    grant_types: set[str]
    scopes: list[str]
    keys: Sequence[bytes] = field(repr=False, default=())

    @property
    def is_public(self) -> bool:
        return self.secret_digest is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several URIs the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Scopes the client was not registered for are dropped (RFC 6749 3.3: the
        # server may issue a narrower scope), never granted.
        if not scope:
            return ""
        return str(list_to_scope([s for s in scope_to_list(scope) if s in self.scopes]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Open redirect / code theft (RFC 9700 4.1): exact string match, no wildcards.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_digest is None:
            return False
        return digests.matches(
            self.keys, keyed.OAUTH_CLIENT_SECRET, client_secret, self.secret_digest
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A confidential client must always prove its secret (RFC 6749 3.2.1); a public
        # client has none and is identified only (PKCE protects its codes).
        if self.is_public:
            return method == PUBLIC_METHOD
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str | None) -> bool:
        if response_type == "code":
            return "authorization_code" in self.grant_types
        if response_type in ("token", "id_token", "id_token token"):
            # OAuth 2.1 drops the implicit grant: only for clients registered with it.
            return "implicit" in self.grant_types
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    id: int
    client_id: str
    user_id: int
    generation: int
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """One side (access or refresh) of a stored token row, as seen at `now`."""

    id: int
    kind: str  # "access_token" or "refresh_token"
    client: Client
    user: User | None
    generation: int | None
    grant_type: str
    scope: str
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    now: datetime

    def check_client(self, client: Client) -> bool:
        return bool(self.client.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        if self.expires_at is None:
            return 0
        return int((self.expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.expires_at is None or self.expires_at <= self.now

    def is_revoked(self) -> bool:
        if self.revoked_at is not None:
            return True
        # Revocation by generation (STYLE rule 14): a reset or password change since
        # issuance kills the token even if the revoking hook somehow missed the row.
        if self.user is not None:
            # A suspended account's tokens are dead too (issue 11; suspension also bumps
            # the generation, so they stay dead once it is lifted).
            stale = self.user.credential_generation != self.generation
            return stale or self.user.suspended_at is not None
        return False

    def is_active(self) -> bool:
        return not self.is_expired() and not self.is_revoked()

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> Client:
        return self.client
