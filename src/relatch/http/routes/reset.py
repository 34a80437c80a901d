"""The reset operations: request a code, verify it, reset the password (the seed)."""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import Request, Response

from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import (
    GenericApiResponse,
    RequestResetPasswordRequest,
    ResetPasswordRequest,
    VerifyResetPasswordRequest,
)
from relatch.services import reset, reset_requests

router = operations(["User"])


# Enumeration: one answer for every address, so it is built once (issue 12: validating
# and serialising the response model on every request cost more than sending it).
_SUCCESS = GenericApiResponse(success=True).model_dump_json(exclude_none=True).encode()


@router.post(
    "/api-user-request-reset-password",
    operation_id="requestResetPassword",
    summary="Request reset password",
    description="Request a password reset link for a user.",
    response_model=GenericApiResponse,
)
async def request_reset_password(body: RequestResetPasswordRequest, request: Request) -> Response:
    # No thread hop of its own: its writes join the next group commit (issue 12).
    await reset_requests.request_reset_grouped(services(request), body.email, request_meta(request))
    return Response(_SUCCESS, media_type="application/json")


@router.post(
    "/api-user-verify-reset-password-code",
    operation_id="verifyResetPassword",
    summary="Verify reset password code",
    description="Verify whether the reset password code for the user is valid.",
)
async def verify_reset_password(
    body: VerifyResetPasswordRequest, request: Request
) -> GenericApiResponse:
    await run_sync(reset.verify, services(request), body.email, body.code, request_meta(request))
    return GenericApiResponse(success=True)


@router.post(
    "/api-user-reset-password",
    operation_id="resetPassword",
    summary="Reset password",
    description="Reset the password for a user.",
)
async def reset_password(body: ResetPasswordRequest, request: Request) -> GenericApiResponse:
    # Awaited: the hashes run in the hashing pool, no request thread waits on them.
    await reset.reset(
        services(request),
        body.email,
        body.code,
        body.newPassword,
        request_meta(request),
    )
    return GenericApiResponse(success=True)
