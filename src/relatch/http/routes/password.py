"""changePasswordCurrentUser: `POST /v1/api/user/change-password`."""

from __future__ import annotations

from fastapi import Depends, Request, Response

from relatch.auth import cookies
from relatch.auth.dependencies import SessionCaller, session_caller
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations, session_only_responses
from relatch.http.schemas import ChangePasswordRequest, GenericApiResponse
from relatch.services.password_change import change_password

router = operations(["User"])

SESSION_HEADER = "x-jwt-token"


@router.post(
    "/api/user/change-password",
    operation_id="changePasswordCurrentUser",
    summary="Change password current user",
    description=(
        "Change the password for the current user account. This function is only "
        "available through a JWT token."
    ),
    responses=session_only_responses(),
)
async def change_password_current_user(
    body: ChangePasswordRequest,
    request: Request,
    response: Response,
    caller: SessionCaller = Depends(session_caller),  # noqa: B008 (JWT only: see session_caller)
) -> GenericApiResponse:
    return await change_own_password(body, request, response, caller)


async def change_own_password(
    body: ChangePasswordRequest, request: Request, response: Response, caller: SessionCaller
) -> GenericApiResponse:
    """changePasswordCurrentUser, and changePasswordUser on one's own id (routes/users_by_id)."""
    svc = services(request)
    signed_in_at = caller.session.auth_time
    # Awaited: the hashes run in the hashing pool, no request thread waits on them.
    token = await change_password(
        svc,
        caller.user,
        body.currentPassword,
        body.newPassword,
        request_meta(request),
        signed_in_at=signed_in_at,
        session_id=caller.session.session_id,
    )
    # Every older session is revoked (generation bump); the caller keeps working with a
    # renewed JWT, handed over the two ways the seed reads one: the `jwt` cookie (browsers)
    # and the `x-jwt-token` response header (API clients; the body schema has no token).
    # It ends when the session it renews would have (core/tokens.py), and so does the cookie.
    remaining = signed_in_at + svc.settings.jwt_ttl - int(svc.clock().timestamp())
    response.headers[SESSION_HEADER] = token
    # HttpOnly, SameSite=Lax, Secure on https (XSS, CSRF, theft): auth/cookies.py SESSION.
    cookies.set_cookie(request, response, cookies.SESSION, token, max_age=max(1, remaining))
    return GenericApiResponse(success=True)
