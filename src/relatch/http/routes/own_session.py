"""The shape shared by the operations a signed-in person runs on their own sessions and
account (routes/sessions.py, routes/account.py): run the use case in a worker thread with
the caller and the request's metadata, then answer `{"success": true}`, clearing the `jwt`
cookie when the caller's own session ended with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from anyio.to_thread import run_sync
from fastapi import Request, Response

from relatch.auth import cookies
from relatch.auth.dependencies import SessionCaller
from relatch.auth.request import request_meta, services
from relatch.core.meta import RequestMeta
from relatch.core.tokens import SessionClaims
from relatch.http.schemas import GenericApiResponse
from relatch.services.account import Account
from relatch.services.context import Services

T = TypeVar("T")
Args = TypeVarTuple("Args")


async def run_as(
    request: Request,
    caller: SessionCaller,
    use_case: Callable[[Services, Account, SessionClaims, *Args, RequestMeta], T],
    *args: *Args,
) -> T:
    """`use_case(svc, user, claims, *args, meta)` off the event loop (it uses the database)."""
    svc, meta = services(request), request_meta(request)
    return await run_sync(lambda: use_case(svc, caller.user, caller.session, *args, meta))


def ended(request: Request, response: Response, *, own: bool) -> GenericApiResponse:
    """The answer after sessions ended. `own`: the caller's session was one of them, so the
    browser forgets the `jwt` cookie too (a dead credential is not left to be sent on every
    request, nor read from the browser later)."""
    if own:
        cookies.clear(request, response, cookies.SESSION)
    return GenericApiResponse(success=True)
