"""Who is calling: each scheme of the seed tried in turn; none valid means HTTP 401."""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread
from fastapi import Request

from relatch.auth.api_key import api_key_header
from relatch.core.errors import NotAuthenticated
from relatch.oauth.bearer import oauth_bearer
from relatch.services import accounts
from relatch.services.context import Services
from relatch.storage.models import User

# A scheme reads its credential from the request; None means "not presented".
# It raises NotAuthenticated when a credential is presented but invalid.
Scheme = Callable[[Services, Request], User | None]


def jwt_header(svc: Services, request: Request) -> User | None:
    token = request.headers.get("x-jwt-token")
    return accounts.user_from_session(svc, token) if token else None


def jwt_cookie(svc: Services, request: Request) -> User | None:
    token = request.cookies.get("jwt")
    if not token:
        # The official generated clients send the JWTAuthentication value as the whole
        # Cookie header (`Cookie: <token>`, no name): accept a bare token there too.
        bare = request.cookies.get("")
        token = bare if bare and bare.count(".") == 2 else None
    return accounts.user_from_session(svc, token) if token else None


SCHEMES: list[Scheme] = [api_key_header, jwt_header, jwt_cookie, oauth_bearer]


def authenticate(svc: Services, request: Request) -> User:
    for scheme in SCHEMES:
        user = scheme(svc, request)
        if user is not None:
            return user
    raise NotAuthenticated()


async def current_user(request: Request) -> User:
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(authenticate, svc, request)
