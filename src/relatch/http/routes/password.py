"""changePasswordCurrentUser: `POST /v1/api/user/change-password`."""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Request, Response

from relatch.auth.dependencies import current_user
from relatch.http.client import request_meta, secure_cookies, services
from relatch.http.schemas import ChangePasswordRequest, GenericApiResponse
from relatch.services.password_change import change_password
from relatch.storage.models import User

router = APIRouter(tags=["User"])

SESSION_COOKIE = "jwt"
SESSION_HEADER = "x-jwt-token"


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
)
async def change_password_current_user(
    body: ChangePasswordRequest,
    request: Request,
    response: Response,
    user: User = Depends(current_user),  # noqa: B008
) -> GenericApiResponse:
    svc = services(request)
    token = await run_sync(
        change_password, svc, user, body.currentPassword, body.newPassword, request_meta(request)
    )
    # Every older session is revoked (generation bump); the caller keeps working with a
    # fresh JWT, handed over the two ways the seed reads one: the `jwt` cookie (browsers)
    # and the `x-jwt-token` response header (API clients; the body schema has no token).
    response.headers[SESSION_HEADER] = token
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=svc.settings.jwt_ttl,
        httponly=True,  # XSS: page scripts cannot read the session
        samesite="lax",  # CSRF: not sent on cross-site POSTs
        secure=secure_cookies(request),  # session theft over plain http
        path="/",
    )
    return GenericApiResponse(success=True)
