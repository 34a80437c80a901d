"""Authlib's AuthorizationServer for Starlette, as authlib/integrations/flask_oauth2 does
it for Flask: requests in, responses out; Authlib does the protocol.

Starlette reads bodies asynchronously and Authlib is synchronous, so the route first reads
the request into an `Incoming` snapshot and then runs the server in a worker thread.
One server per request: it carries that request's services, caller facts and sign-in time.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from starlette.requests import Request
from starlette.responses import Response

from relatch.core import oauth_digests as digests
from relatch.core.meta import RequestMeta
from relatch.oauth import endpoints, grants
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import oauth_repo as store
from relatch.storage.models import User
from relatch.storage.oauth_records import SCOPES, Client

log = logging.getLogger(__name__)

# Bounded work per request: OAuth parameters are short; more is refused as a bad request.
MAX_FIELDS = 64
T = TypeVar("T")


@dataclass(frozen=True)
class Incoming:
    """What Authlib may read of an HTTP request, read once from Starlette."""

    method: str
    uri: str
    headers: Mapping[str, str]  # case-insensitive (Starlette Headers): Authlib asks 'Authorization'
    query: Sequence[tuple[str, str]] = ()
    form: Sequence[tuple[str, str]] = ()


async def read(request: Request, public_url: str, *, form: bool) -> Incoming:
    """Snapshot `request`. The URI is rebuilt on the configured public URL: Authlib refuses
    plain http except on loopback (InsecureTransportError), judged on what clients see."""
    pairs: list[tuple[str, str]] = []
    if form and request.method == "POST":
        data = await request.form(max_files=0, max_fields=MAX_FIELDS)
        pairs = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    query = list(request.query_params.multi_items())[:MAX_FIELDS]
    uri = public_url.rstrip("/") + request.url.path
    if request.url.query:
        uri += "?" + request.url.query
    return Incoming(request.method, uri, request.headers, query, pairs)


class Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        lists: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            lists[key].append(value)
        self._datalist = lists
        self._data = {k: v[0] for k, v in lists.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.uri, headers=incoming.headers)
        self._args = {k: v for k, v in reversed(list(incoming.query))}
        self._form = {k: v for k, v in reversed(list(incoming.form))}
        # Parameters come from the query on GET and from the body on POST, never mixed:
        # a token request's secrets must not ride in a URL (RFC 6749 2.3.1, 3.2).
        self.payload = Payload(incoming.form if incoming.method == "POST" else incoming.query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class AuthorizeRequest(StarletteOAuth2Request):
    """The authorize endpoint: its OAuth parameters are always the query string, also when
    the sign-in or consent form posts back to the same URL."""

    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming)
        self.payload = Payload(incoming.query)


def basic_header_readable(auth: str | None) -> bool:
    """False for an `Authorization: Basic` header Authlib cannot decode; True otherwise
    (absent, another scheme, or base64 of UTF-8 text)."""
    if not auth or " " not in auth:
        return True
    parts = auth.split(None, 1)
    if parts[0].lower() != "basic":
        return True
    if len(parts) != 2:
        return False
    try:
        base64.b64decode(parts[1].encode("ascii")).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeError are ValueErrors
        return False
    return True


def _unbuilt_error(exc: ValueError) -> OAuth2Error | None:
    """The OAuth2Error Authlib was constructing when `exc` was raised, if it was."""
    built: OAuth2Error | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__":
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, OAuth2Error):
                built = candidate
        tb = tb.tb_next
    return built


def quotable(call: Callable[[], T]) -> T:
    """Run an Authlib call whose errors may quote the request.

    Authlib writes request values into error_description ("Redirect URI <uri> is not
    supported by client.", "The response type '<type>' ..."), and OAuth2Error refuses any
    character outside RFC 6749's set (%x20-21 / %x23-5B / %x5D-7E): a `"`, `\\` or `é` in
    the request made the error itself raise ValueError, a 500 (issue 8; once fixed for
    response_type alone). Whichever error it was, it is raised again as the same error
    code without a description, without error_uri and without a redirect: what it would
    have quoted is untrusted, and no client-side redirect is owed for such a request.
    Any other ValueError is a bug and stays one.
    """
    try:
        return call()
    except ValueError as exc:
        built = _unbuilt_error(exc)
        if built is None:
            raise
        kind = type(built)
        code = kind.error or "invalid_request"
        raise OAuth2Error(error=code, status_code=kind.status_code) from None


class RelatchAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        svc: Services,
        meta: RequestMeta,
        auth_time: int | None = None,
        checked_password: grants.CheckedPassword | None = None,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.svc = svc
        self.meta = meta
        self.auth_time = auth_time
        # The password grant's password, verified before Authlib runs (grants.py).
        self.checked_password = checked_password
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: digests.new_token(store.ACCESS_MARK),
                lambda **_: digests.new_token(store.REFRESH_MARK),
                lambda client, grant_type: int(store.ACCESS_TTL.total_seconds()),
            ),
        )
        self.register_grant(
            grants.AuthorizationCodeGrant,
            [grants.StrictCodeChallenge(), grants.RelatchOpenIDCode(svc)],
        )
        self.register_grant(grants.ImplicitGrant)
        self.register_grant(grants.OpenIDImplicit)
        self.register_grant(grants.PasswordGrant)
        self.register_grant(grants.ClientCredentialsGrant)
        self.register_grant(grants.RefreshTokenGrant)
        self.register_endpoint(endpoints.Revocation)
        self.register_endpoint(endpoints.Introspection)

    def query_client(self, client_id: str) -> Client | None:
        return store.load_client(self.svc, client_id)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> Client:
        # Authlib's client_secret_basic parser trusts the header: `Basic ` without
        # credentials, non-ASCII base64 or credentials that are not UTF-8 raise ValueError,
        # a 500 (the bug of django-oauth-toolkit #142 and #591). A client sent them:
        # refuse them as bad client credentials, like a wrong secret: 401 with
        # WWW-Authenticate, since the client tried the Authorization header (RFC 6749 5.2).
        if not basic_header_readable(request.headers.get("Authorization")):
            raise InvalidClientError(status_code=401, description="Unreadable Basic credentials")
        client: Client = super().authenticate_client(request, methods, endpoint)
        return client

    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: User | Account | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # A refresh token only for a person's grant, and only to clients allowed to use it.
        include = include_refresh_token and user is not None
        include = include and client.check_grant_type("refresh_token")
        token: dict[str, Any] = super().generate_token(
            grant_type, client, user, scope, expires_in, include
        )
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        grant_type = request.payload.grant_type or "implicit"
        code = request.authorization_code if grant_type == "authorization_code" else None
        old = request.refresh_token if grant_type == "refresh_token" else None
        try:
            store.save_token(
                self.svc,
                token,
                request.client,
                request.user,
                grant_type if old is None else old.grant_type,
                consume_code=code.id if code is not None else None,
                rotate_from=old.id if old is not None else None,
            )
        except store.SpentSecret as exc:
            # Replay or race: the code / refresh token was spent by another request.
            raise InvalidGrantError() from exc

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return StarletteOAuth2Request(request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        return Response(payload, status_code=status_code, headers=dict(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None
