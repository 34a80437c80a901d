"""TOTP second factor: the Edge Impulse operations under `/v1/api/user/mfa/totp/`.

Each needs a recent sign-in (`recent_session_user`): a TOTP key planted with a stolen
session would survive the owner's reset and lock them out (ASVS 5.0 7.5.1). Setting one up
(create-key, set-key) also needs a proven address (`activated_recent_user`: account
pre-hijacking, services/activation.py).
"""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import Depends, Request

from relatch.auth.dependencies import activated_recent_user, recent_session_user
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import (
    GenericApiResponse,
    UserDeleteTotpMfaKeyRequest,
    UserGenerateNewMfaKeyResponse,
    UserSetTotpMfaKeyRequest,
    UserSetTotpMfaKeyResponse,
)
from relatch.services import mfa
from relatch.services.account import Account

router = operations(["User"], recent_sign_in=True)


@router.post(
    "/api/user/mfa/totp/create-key",
    operation_id="userGenerateNewTotpMfaKey",
    summary="Generate a new TOTP MFA key",
    description="Creates a new MFA key, only allowed if the user has no MFA configured. "
    "TOTP tokens use SHA-1 algorithm.",
)
async def create_key(
    request: Request,
    user: Account = Depends(activated_recent_user),  # noqa: B008
) -> UserGenerateNewMfaKeyResponse:
    new = await run_sync(mfa.create_key, services(request), user, request_meta(request))
    return UserGenerateNewMfaKeyResponse(success=True, key=new.key, url=new.url)


@router.post(
    "/api/user/mfa/totp/set-key",
    operation_id="userSetTotpMfaKey",
    summary="Set TOTP MFA key",
    description="Enable MFA on this account using an TOTP token. "
    "First create a new key via `userGenerateNewTotpMfaKey`.",
)
async def set_key(
    body: UserSetTotpMfaKeyRequest,
    request: Request,
    user: Account = Depends(activated_recent_user),  # noqa: B008
) -> UserSetTotpMfaKeyResponse:
    codes = await run_sync(
        mfa.set_key, services(request), user, body.key, body.totpToken, request_meta(request)
    )
    return UserSetTotpMfaKeyResponse(success=True, recoveryCodes=codes)


@router.post(
    "/api/user/mfa/totp/clear",
    operation_id="userDeleteTotpMfaKey",
    summary="Remove TOTP MFA key",
    description="Disable MFA on this account using an TOTP token.",
)
async def clear(
    body: UserDeleteTotpMfaKeyRequest,
    request: Request,
    user: Account = Depends(recent_session_user),  # noqa: B008
) -> GenericApiResponse:
    await run_sync(mfa.clear, services(request), user, body.totpToken, request_meta(request))
    return GenericApiResponse(success=True)
