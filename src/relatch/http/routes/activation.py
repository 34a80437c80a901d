"""Activation of the signed-in account: `POST /v1/api/user/activate` and
`POST /v1/api/user/request-activation` (services/activation.py).

Any scheme that names the account will do (the seed's global security): the code itself,
from the mailbox, is the proof; a session JWT, an API key or a bearer token only says which
account it is for.
"""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import Depends, Request

from relatch.auth.dependencies import current_user
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import ActivateUserOrVerifyEmailRequest, GenericApiResponse
from relatch.services import activation
from relatch.services.account import Account

router = operations(["User"])


@router.post(
    "/api/user/activate",
    operation_id="activateCurrentUser",
    summary="Activate current user",
    description="Activate the current user account (requires the activation code sent "
    "by mail when the account was created, or by request-activation).",
)
async def activate_current_user(
    body: ActivateUserOrVerifyEmailRequest,
    request: Request,
    user: Account = Depends(current_user),  # noqa: B008
) -> GenericApiResponse:
    await run_sync(activation.activate, services(request), user, body.code, request_meta(request))
    return GenericApiResponse(success=True)


@router.post(
    "/api/user/request-activation",
    operation_id="requestActivationCodeCurrentUser",
    summary="Request activation code",
    description="Request a new activation code for the current user (the older one stops working).",
)
async def request_activation_code_current_user(
    request: Request,
    user: Account = Depends(current_user),  # noqa: B008
) -> GenericApiResponse:
    await run_sync(activation.request_code, services(request), user, request_meta(request))
    return GenericApiResponse(success=True)
