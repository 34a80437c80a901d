"""The signed-in account's sessions (issue 14; Relatch's own operations, tag "Sessions"):
sign out, list them, end one, end all but this one.

Session JWT only (auth/dependencies.py `own_session`, which says why). With the jwt
cookie, the state changes need a JSON Content-Type (CSRF rule of auth/dependencies.py).
"""

from __future__ import annotations

from datetime import UTC

from anyio.to_thread import run_sync
from fastapi import Depends, Request, Response
from fastapi import Path as PathParam

from relatch.auth.dependencies import SessionCaller, own_session
from relatch.auth.request import services
from relatch.http.openapi import operations, own_session_responses
from relatch.http.routes.own_session import ended, run_as
from relatch.http.schemas import GenericApiResponse
from relatch.http.schemas_sessions import ListSessionsResponse, SessionInfo
from relatch.services import sign_in_sessions

router = operations(["Sessions"])
OWN = own_session_responses()


@router.post(
    "/api/user/logout",
    operation_id="signOut",
    summary="Sign out",
    description=(
        "End the session of this JWT at once (it is refused from then on, on every "
        "operation) and clear the jwt cookie. Only available through a session JWT."
    ),
    responses=OWN,
)
async def sign_out(
    request: Request,
    response: Response,
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> GenericApiResponse:
    await run_as(request, caller, sign_in_sessions.sign_out)
    return ended(request, response, own=True)


@router.get(
    "/api/user/sessions",
    operation_id="listSessions",
    summary="List my sessions",
    description=(
        "The current user's live sessions, newest sign-in first: when each signed in, when "
        "it was last seen (to the minute), its user agent and network, and which one is "
        "making this request. Only available through a session JWT."
    ),
    responses=OWN,
)
async def list_sessions(
    request: Request,
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> ListSessionsResponse:
    views = await run_sync(sign_in_sessions.listed, services(request), caller.user, caller.session)
    return ListSessionsResponse(
        success=True,
        sessions=[
            SessionInfo(
                id=v.id,
                created=v.created.astimezone(UTC),
                lastSeen=v.last_seen.astimezone(UTC),
                userAgent=v.user_agent,
                network=v.network,
                current=v.current,
            )
            for v in views
        ],
    )


@router.delete(
    "/api/user/sessions/{sessionId}",
    operation_id="endSession",
    summary="End a session",
    description=(
        "End one of the current user's sessions; its JWT is refused from then on. Ending "
        "the current one signs out (and clears the jwt cookie). An id that is not one of "
        "the current user's sessions answers 'Session not found'."
    ),
    responses=OWN,
)
async def end_session(
    request: Request,
    response: Response,
    sessionId: str = PathParam(min_length=1, max_length=64),  # noqa: N803 (Edge Impulse style)
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> GenericApiResponse:
    own = await run_as(request, caller, sign_in_sessions.end_one, sessionId)
    return ended(request, response, own=own)


@router.post(
    "/api/user/sessions/end-others",
    operation_id="endOtherSessions",
    summary="End all other sessions",
    description=(
        "End every session of the current user but this one. Session JWTs issued before "
        "sessions were recorded (no `sid`) all end too, this one included if it is one."
    ),
    responses=OWN,
)
async def end_other_sessions(
    request: Request,
    response: Response,
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> GenericApiResponse:
    await run_as(request, caller, sign_in_sessions.end_others)
    # A pre-upgrade JWT (no `sid`) ended itself with the others: the browser forgets it too.
    return ended(request, response, own=caller.session.session_id is None)
