"""The grants Relatch allows, as Authlib subclasses: Authlib runs every protocol step,
these classes only tell it where the data lives (storage/oauth_repo.py) and who the user is.

| grant                | client auth             | notes                                   |
| authorization_code   | secret, or none + PKCE  | S256 PKCE required for public clients   |
| implicit             | none (front channel)    | only for clients registered with it     |
| password             | secret, or none         | second factor; activated accounts only  |
| client_credentials   | secret only             | tokens act for no user                  |
| refresh_token        | secret, or none         | rotation: the old refresh token dies    |
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode, OpenIDImplicitGrant
from joserfc.jwk import RSAKey

from relatch.core.errors import ActivationRequired, LoginFailed, TotpRequired
from relatch.core.meta import RequestMeta
from relatch.oauth import keys, params
from relatch.services import accounts, activation
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import oauth_code_replay as code_replay
from relatch.storage import oauth_repo as store
from relatch.storage.models import User
from relatch.storage.oauth_records import (
    ANY_METHOD,
    SECRET_METHODS,
    AuthorizationCode,
    Client,
    Token,
)

if TYPE_CHECKING:
    from relatch.oauth.server import RelatchAuthorizationServer

log = logging.getLogger(__name__)

ID_TOKEN_TTL = 3600
WITH_PUBLIC = list(ANY_METHOD)
SECRET_ONLY = list(SECRET_METHODS)


def user_info(user: User | Account, scope: str) -> UserInfo:
    """Claims per granted scope (OIDC Core 5.4): sub always; email; profile."""
    info = UserInfo(
        sub=str(user.id),
        email=user.email,
        email_verified=bool(user.email_verified),
        name=user.name,
        preferred_username=user.username,
    )
    return info.filter(scope)


class IdTokenSigner:
    """What OpenID Connect needs to sign ID tokens: issuer, audience, times, key."""

    svc: Services
    auth_time: int | None = None
    _key: tuple[str, RSAKey] | None = None

    def _signing_key(self) -> tuple[str, RSAKey]:
        if self._key is None:
            self._key = keys.current(self.svc)
        return self._key

    def get_client_algorithm(self, client: Client) -> str:
        return keys.ALG

    def get_encode_header(self, client: Client) -> dict[str, str]:
        # The kid lets relying parties pick the right key from the JWKS across rotations.
        return {"alg": keys.ALG, "kid": self._signing_key()[0], "typ": "JWT"}

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self._signing_key()[1]

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(self.svc.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.svc.settings.issuer,
            "aud": [client.get_client_id()],
            "iat": now,
            "exp": now + ID_TOKEN_TTL,
        }
        if self.auth_time is not None:
            claims["auth_time"] = self.auth_time
        return claims

    def generate_user_info(self, user: User | Account, scope: str) -> UserInfo:
        return user_info(user, scope)


class RelatchOpenIDCode(IdTokenSigner, OpenIDCode):  # type: ignore[misc]
    def __init__(self, svc: Services) -> None:
        super().__init__(require_nonce=False)
        self.svc = svc

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # Replay: a nonce already bound to a code of this client is refused.
        return store.nonce_used(self.svc, request.payload.client_id, nonce)


class StrictCodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE (RFC 7636) with S256 only, and required for public clients.

    Code interception (RFC 7636 1, RFC 9700 2.1.1): a public client has no secret, so
    without PKCE a stolen code is as good as a token. `plain` would leak the verifier
    with the challenge, so only S256 is accepted, from any client.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        client: Client = grant.request.client
        if client.is_public and not challenge:
            raise InvalidRequestError("Public clients must use PKCE ('code_challenge', S256)")
        if challenge and method != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, code: AuthorizationCode) -> str | None:
        return code.code_challenge

    def get_authorization_code_challenge_method(self, code: AuthorizationCode) -> str | None:
        return code.code_challenge_method


def _server(grant: Any) -> RelatchAuthorizationServer:
    server: RelatchAuthorizationServer = grant.server
    return server


class CheckedAuthorizeRequest:
    """The authorization request's parameters are checked (oauth/params.py) right after
    its redirect URI is verified, before the grant stores, looks up or returns any of them."""

    def validate_authorization_redirect_uri(self, request: Any, client: Client) -> str:
        payload = request.payload
        if payload.redirect_uri and not client.check_redirect_uri(payload.redirect_uri):
            # Open redirect (RFC 6749 4.1.2.1): no redirect. Text injection: unlike
            # Authlib's message, the URI is not quoted back.
            raise InvalidRequestError("The redirect URI is not registered for this client")
        redirect_uri: str = super().validate_authorization_redirect_uri(  # type: ignore[misc]
            request, client
        )
        fragment = params.carries_token(payload.response_type)
        bad = params.bad_parameter(payload.datalist)
        if bad == "state":
            # The state is sent back with any error: a bad one gets the error page instead.
            raise InvalidRequestError("'state' is too long or holds control characters")
        if bad is not None:
            raise InvalidRequestError(
                f"'{bad}' is too long or holds control characters",
                redirect_uri=redirect_uri,
                redirect_fragment=fragment,
            )
        problem = params.mode_problem(payload.data)
        if problem is not None:
            raise InvalidRequestError(
                problem, redirect_uri=redirect_uri, redirect_fragment=fragment
            )
        return redirect_uri


class AuthorizationCodeGrant(CheckedAuthorizeRequest, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = WITH_PUBLIC

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        store.save_code(
            _server(self).svc,
            code,
            request.client,
            request.user,
            # Empty when the request relied on the single registered URI: the token
            # request then need not repeat it (RFC 6749 4.1.3).
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=_server(self).auth_time or int(_server(self).svc.clock().timestamp()),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        svc = _server(self).svc
        found = store.find_code(svc, code, client)
        if found is None:
            # Code replay (RFC 6749 4.1.2): still invalid_grant (Authlib raises it on
            # None), and the tokens the first use bought are revoked (storage/oauth_code_replay.py).
            verifier = self.request.payload.data.get("code_verifier")
            code_replay.revoke_if_replayed(svc, code, client, verifier)
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Consumed in save_token, atomically with storing the token (store.save_token).
        return None

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = store.user_by_id(_server(self).svc, authorization_code.user_id)
        # A reset or password change between consent and redemption voids the code; no
        # token for an unproven address (account pre-hijacking: services/activation.py).
        if user is None or user.credential_generation != authorization_code.generation:
            return None
        return user if user.email_verified else None


class ImplicitFrontChannel:
    """Implicit grants authenticate no client (front channel): the client is identified
    by client_id and its registered redirect URI only."""

    request: Any
    server: Any

    def authenticate_token_endpoint_client(self) -> Client:
        client = self.server.query_client(self.request.payload.client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        return client  # type: ignore[no-any-return]


class ImplicitGrant(CheckedAuthorizeRequest, ImplicitFrontChannel, grants.ImplicitGrant):  # type: ignore[misc]
    pass


class OpenIDImplicit(
    CheckedAuthorizeRequest,
    ImplicitFrontChannel,
    IdTokenSigner,
    OpenIDImplicitGrant,  # type: ignore[misc]
):
    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)
        self.svc = server.svc
        self.auth_time = server.auth_time

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # Implicit ID tokens carry the nonce straight to the client, which checks it
        # against its own session; the server keeps no state for them.
        return False


@dataclass(frozen=True)
class CheckedPassword:
    """A password grant's password, checked before Authlib runs (`check_password_first`)."""

    username: str
    password: str
    outcome: accounts.PasswordMatched | Exception

    def outcome_for(self, username: str, password: str) -> accounts.PasswordMatched | Exception:
        # Only for the very credentials that were checked (Authlib reads the same form).
        same = hmac.compare_digest(self.username.encode(), username.encode())
        same &= hmac.compare_digest(self.password.encode(), password.encode())
        return self.outcome if same else LoginFailed()


async def check_password_first(
    svc: Services, meta: RequestMeta, form: Sequence[tuple[str, str]]
) -> CheckedPassword | None:
    """The password grant's argon2 verify, awaited in the token route before Authlib's
    synchronous code runs, so that no thread waits on a hash (infra/hashing_pool.py).

    Sound because nothing is decided here: PasswordGrant.authenticate_user uses the outcome
    only after Authlib has authenticated the client and checked the grant, and it is
    audited there as today (accounts.finish_sign_in). The cost moves earlier: a request with
    a bad client now spends one verify and, if the password is wrong, one failure of the
    account's budget, exactly as `/api-login` does with no client at all; a bad client
    still learns nothing (Authlib answers invalid_client first).
    """
    first: dict[str, str] = {}
    for key, value in form:
        first.setdefault(key, value)  # the values Authlib reads (server.StarletteOAuth2Request)
    if first.get("grant_type") != "password" or "username" not in first or "password" not in first:
        return None
    username, password = first["username"], first["password"]
    outcome = await accounts.checked_password(svc, username, password, meta)
    return CheckedPassword(username, password, outcome)


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = WITH_PUBLIC

    def authenticate_user(self, username: str, password: str) -> User | None:
        server = _server(self)
        # The second factor is not bypassed by this grant: the token goes in `totpToken`.
        token = self.request.form.get("totpToken")
        # The password was verified, awaited, before Authlib ran (check_password_first);
        # without that, refused: this thread never waits on a hash.
        checked = server.checked_password
        outcome = checked.outcome_for(username, password) if checked else LoginFailed()
        try:
            user = accounts.finish_sign_in(server.svc, username, outcome, token, server.meta).user
            # Account pre-hijacking: no token for an unproven address (services/activation.py);
            # said only once the password and second factor passed.
            activation.require_activated(Account.of(user))
        except (TotpRequired, LoginFailed, ActivationRequired) as exc:
            # Enumeration: one answer for an unknown user and a wrong password.
            raise InvalidGrantError(description=exc.message) from exc
        return user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_ONLY


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = WITH_PUBLIC
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        svc = _server(self).svc
        token = store.find_token(svc, refresh_token, "refresh_token")
        if token is None or token.kind != "refresh_token":
            return None
        if token.revoked_at is not None and token.user is not None:
            if store.was_rotated(svc, token.id):
                # Replay of a rotated refresh token (RFC 9700 4.14.2): one of the two
                # holders is a thief, so the whole grant of this client dies.
                log.warning("rotated refresh token replayed; revoking the grant")
                store.revoke_grant(svc, token.user.id, token.client.client_id)
            return None
        return token if token.is_active() else None

    def authenticate_user(self, refresh_token: Token) -> User | None:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: Token) -> None:
        # Done in save_token, atomically with storing the new token (store.save_token).
        return None
