"""Who is calling: each scheme of the seed tried in turn; none valid means HTTP 401.

`recent_session_user` guards the operations that change how an account signs in (API
keys, TOTP): only a session JWT from a sign-in within RELATCH_REAUTH_SECONDS passes;
`activated_recent_user`, for those that make a credential, also needs a proven address.
`session_caller` guards changePasswordCurrentUser: a session JWT of any age, never an
API key or an OAuth bearer token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request

from relatch.auth import cookies
from relatch.auth.api_key import api_key_header
from relatch.auth.bearer import oauth_bearer
from relatch.core import tokens
from relatch.core.errors import NotAuthenticated, ReauthRequired, SessionRequired
from relatch.infra import metrics
from relatch.services import accounts, activation
from relatch.services.account import Account
from relatch.services.context import Services


@dataclass(frozen=True)
class Caller:
    """The account a credential names, and, for a session JWT only, its claims (when the
    sign-in happened). An API key or an OAuth bearer token carries no sign-in time."""

    user: Account
    session: tokens.SessionClaims | None = None


@dataclass(frozen=True)
class SessionCaller:
    """A caller that presented a session JWT: its account and the claims of its sign-in."""

    user: Account
    session: tokens.SessionClaims


# A scheme reads its credential from the request; None means "not presented".
# It raises NotAuthenticated when a credential is presented but invalid.
Scheme = Callable[[Services, Request], Caller | None]


def _session(svc: Services, token: str) -> Caller:
    user, claims = accounts.session_from_token(svc, token)
    return Caller(user, claims)


def jwt_header(svc: Services, request: Request) -> Caller | None:
    token = request.headers.get("x-jwt-token")
    return _session(svc, token) if token else None


def jwt_cookie(svc: Services, request: Request) -> Caller | None:
    token = request.cookies.get(cookies.SESSION.name)
    if not token:
        # The official generated clients send the JWTAuthentication value as the whole
        # Cookie header (`Cookie: <token>`, no name): accept a bare token there too.
        bare = request.cookies.get("")
        token = bare if bare and bare.count(".") == 2 else None
    return _session(svc, token) if token else None


def _without_session(scheme: Callable[[Services, Request], Account | None]) -> Scheme:
    """A scheme that names an account but proves no sign-in (API key, OAuth bearer)."""

    @functools.wraps(scheme)
    def identify(svc: Services, request: Request) -> Caller | None:
        user = scheme(svc, request)
        return Caller(user) if user is not None else None

    return identify


SCHEMES: list[Scheme] = [
    _without_session(api_key_header),
    jwt_header,
    jwt_cookie,
    _without_session(oauth_bearer),
]
# Each scheme's label in relatch_sign_ins_total (infra/metrics.py).
SCHEME_LABELS = {
    "api_key_header": "api_key",
    "jwt_header": "jwt_header",
    "jwt_cookie": "jwt_cookie",
    "oauth_bearer": "oauth_bearer",
}


# Methods that change nothing (RFC 9110 9.2.1): a forged one gains the forger nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE_NEEDS_JSON = (
    "With the jwt cookie, send this request as application/json "
    "(or send the token in the x-jwt-token header)"
)


def _json_request(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def identify(svc: Services, request: Request) -> Caller:
    for scheme in SCHEMES:
        caller = scheme(svc, request)
        if caller is None:
            continue
        # CSRF (OWASP CSRF Cheat Sheet, "custom request headers"; ASVS 5.0 3.5.1): the
        # browser attaches the jwt cookie to a cross-site form POST too, and a form can send
        # text/plain, urlencoded, multipart or no body, never application/json, which needs
        # a CORS preflight that this API does not answer. So the cookie authenticates a
        # state change only with a JSON Content-Type. 401, not 400: the request may be well
        # formed; what fails is that the cookie alone does not prove the caller sent it.
        # Header credentials (x-jwt-token, x-api-key, Bearer) are set by a script or a
        # client, never by a cross-site form: unchanged, bodiless requests included.
        unsafe = request.method not in SAFE_METHODS
        if scheme is jwt_cookie and unsafe and not _json_request(request):
            raise NotAuthenticated(COOKIE_NEEDS_JSON)
        return _admitted(scheme, caller)
    raise NotAuthenticated()


def _admitted(scheme: Scheme, caller: Caller) -> Caller:
    # Suspension (issue 11): whatever the scheme, a suspended account uses no credential
    # (each scheme refuses it too; this is the one place they all pass).
    if caller.user.suspended:
        raise NotAuthenticated()
    metrics.SIGN_INS.labels(SCHEME_LABELS[scheme.__name__]).inc()
    return caller


def page_session(svc: Services, request: Request) -> SessionCaller:
    """The caller of a server-rendered account page (web/account_page.py): the jwt cookie,
    the browser's credential, and nothing else; NotAuthenticated without a live one.

    CSRF: the page's forms are posted as forms, so the JSON rule of `identify` cannot
    apply; each form carries the token of web/csrf.py instead, which the page checks
    before calling this (and the cookie is SameSite=Lax: no cross-site POST carries it).
    Only a session acts on sessions, as in `authenticate_own_session`.
    """
    caller = jwt_cookie(svc, request)
    if caller is None or caller.session is None:
        raise NotAuthenticated()
    admitted = _admitted(jwt_cookie, caller)
    return SessionCaller(admitted.user, caller.session)


def authenticate(svc: Services, request: Request) -> Account:
    return identify(svc, request).user


def authenticate_recent(svc: Services, request: Request) -> Account:
    return authenticate_recent_session(svc, request).user


def authenticate_recent_session(svc: Services, request: Request) -> SessionCaller:
    """The caller (account and session claims) if they signed in with their password (and
    TOTP) recently.

    Session abuse (ASVS 5.0 7.5.1, GitHub's "sudo mode"): a stolen long-lived credential
    must not mint a new one that outlives it. An API key would mint its own successor; an
    OAuth bearer token is a third party's delegated access and outlives no sign-in of the
    owner; a session JWT older than RELATCH_REAUTH_SECONDS may have been lifted from a
    browser. Each would let a thief plant an API key, or a TOTP key that survives the
    owner's reset and "this was not me", and lock the owner out. The Edge Impulse request
    bodies have no password field, so the proof is a fresh sign-in: its JWT's `iat`.
    """
    caller = identify(svc, request)  # bad credentials stay a plain 401 "Not authenticated"
    now = int(svc.clock().timestamp())
    session = caller.session
    if session is None or not tokens.signed_in_within(session, now, svc.settings.reauth_seconds):
        raise ReauthRequired()
    return SessionCaller(caller.user, session)


def authenticate_session(svc: Services, request: Request) -> SessionCaller:
    """The caller if the credential is a session JWT (header or cookie), else ReauthRequired.

    Second-factor bypass (issue 8): changePasswordCurrentUser checks the current password
    only and hands back a session JWT. An API key or a third party's OAuth bearer token
    passes no second factor, so with the password it would mint a session that skipped
    TOTP. Only a session, which its sign-in took through the second factor, may renew
    itself; Edge Impulse documents the operation as JWT-only.
    """
    return require_session(identify(svc, request))  # bad credentials: a plain 401


def require_session(caller: Caller) -> SessionCaller:
    """The caller if its credential is a session JWT, else ReauthRequired (401): the rule of
    `authenticate_session`, for a handler that identified the caller itself (by id)."""
    if caller.session is None:
        raise ReauthRequired()
    return SessionCaller(caller.user, caller.session)


async def current_user(request: Request) -> Account:
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate, svc, request)


async def any_caller(request: Request) -> Caller:
    """Dependency of the operations by id (`/v1/api/users/{userId}`): any scheme, with the
    session claims when the credential is a session JWT (services/staff.py reads them)."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(identify, svc, request)


async def session_caller(request: Request) -> SessionCaller:
    """Dependency of changePasswordCurrentUser: a session JWT only (with its claims)."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate_session, svc, request)


def authenticate_own_session(svc: Services, request: Request) -> SessionCaller:
    """The caller if the credential is a session JWT (header or cookie), else
    SessionRequired (401). The rule of the sessions operations (issue 14):

    - Sign out and "end one" act on sessions; an API key or OAuth bearer token is none.
    - Surveillance and lock-out: the list names where the owner is signed in (user agent,
      network), and ending sessions signs the owner out. A third party's OAuth token, or a
      CI job's API key that leaked, must do neither; the owner holds a session JWT anyway.
    - No recent sign-in needed: ending sessions makes no credential, and the owner who
      suspects a thief must be able to act from any session they have.
    """
    caller = identify(svc, request)  # bad credentials: a plain 401
    if caller.session is None:
        raise SessionRequired()
    return SessionCaller(caller.user, caller.session)


async def own_session(request: Request) -> SessionCaller:
    """Dependency of the sessions operations (http/routes/sessions.py)."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate_own_session, svc, request)


async def recent_session_user(request: Request) -> Account:
    """Dependency of the credential-management operations (API keys, TOTP)."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate_recent, svc, request)


async def recent_session(request: Request) -> SessionCaller:
    """`recent_session_user`, with the session's claims (when it signed in), for an
    operation that also asks whether that sign-in passed the second factor."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate_recent_session, svc, request)


async def activated_recent_user(request: Request) -> Account:
    """Dependency of the operations that make a credential (create an API key, set up
    TOTP): `recent_session_user`, and the account's address proven (ActivationRequired,
    a handled failure; account pre-hijacking: services/activation.py). Revoking a key or
    clearing TOTP needs no proof: removing a credential plants nothing."""
    user = await recent_session_user(request)
    activation.require_activated(user)
    return user
