"""changePasswordCurrentUser: `POST /v1/api/user/change-password`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from relatch.auth import cookies
from relatch.auth.dependencies import SessionCaller, session_caller
from relatch.auth.request import request_meta, services
from relatch.http.schemas import ChangePasswordRequest, GenericApiResponse
from relatch.services.password_change import change_password

router = APIRouter(tags=["User"])

SESSION_HEADER = "x-jwt-token"

SESSION_ONLY: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing, bad, expired or revoked credentials, or not a session: this "
        "operation needs a session JWT (x-jwt-token header or jwt cookie); an API key or "
        "OAuth token is refused",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenericApiResponse"}}
        },
    }
}


@router.post(
    "/api/user/change-password",
    operation_id="changePasswordCurrentUser",
    summary="Change password current user",
    description=(
        "Change the password for the current user account. This function is only "
        "available through a JWT token."
    ),
    response_model=GenericApiResponse,
    response_model_exclude_none=True,
    responses=SESSION_ONLY,
)
async def change_password_current_user(
    body: ChangePasswordRequest,
    request: Request,
    response: Response,
    caller: SessionCaller = Depends(session_caller),  # noqa: B008 (JWT only: see session_caller)
) -> GenericApiResponse:
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
