"""TOTP second factor: the Edge Impulse operations under `/v1/api/user/mfa/totp/`.

Each needs a recent sign-in (`recent_session_user`): a TOTP key planted with a stolen
session would survive the owner's reset and lock them out (ASVS 5.0 7.5.1). Setting one up
(create-key, set-key) also needs a proven address (`activated_recent_user`: account
pre-hijacking, services/activation.py).

Relatch's own operations (issue 14, tag "Second factor", not Edge Impulse's): new recovery
codes (a recent sign-in that passed the second factor: services/mfa.regenerate_codes) and
the factor's state next to getCurrentUser (whose Edge Impulse schema stays as it is).
"""

from __future__ import annotations

from datetime import UTC

from anyio.to_thread import run_sync
from fastapi import Depends, Request

from relatch.auth.dependencies import (
    Caller,
    activated_recent_user,
    any_caller,
    current_user,
    recent_session_user,
)
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations, recent_factor_responses
from relatch.http.schemas import (
    GenericApiResponse,
    UserDeleteTotpMfaKeyRequest,
    UserGenerateNewMfaKeyResponse,
    UserSetTotpMfaKeyRequest,
    UserSetTotpMfaKeyResponse,
)
from relatch.http.schemas_mfa import MfaStatusResponse, RecoveryCodesResponse
from relatch.services import mfa
from relatch.services.account import Account

router = operations(["User"], recent_sign_in=True)
own = operations(["Second factor"])  # Relatch's own operations


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


@own.post(
    "/api/user/mfa/recovery-codes",
    operation_id="regenerateRecoveryCodes",
    summary="New recovery codes",
    description=(
        "Replace the 10 TOTP recovery codes: every older one, used or not, stops working, "
        "and the new ones are shown this once. Needs a session JWT from a sign-in within "
        "RELATCH_REAUTH_SECONDS that passed the second factor (a session signed in before "
        "TOTP was turned on does not qualify). The owner is mailed a notice. No body."
    ),
    responses=recent_factor_responses(),
)
async def regenerate_recovery_codes(
    request: Request,
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> RecoveryCodesResponse:
    codes = await run_sync(
        mfa.regenerate_codes, services(request), caller.user, caller.session, request_meta(request)
    )
    return RecoveryCodesResponse(success=True, recoveryCodes=codes)


@own.get(
    "/api/user/mfa",
    operation_id="getMfaStatus",
    summary="Second factor state",
    description=(
        "Whether TOTP is on for the current user, how many recovery codes are left (the "
        "owner is mailed once when 2 or fewer remain), and when an operator's pending "
        "removal of the factor (`relatch user mfa-reset`) takes effect, if one is pending."
    ),
)
async def get_mfa_status(
    request: Request,
    user: Account = Depends(current_user),  # noqa: B008
) -> MfaStatusResponse:
    state = await run_sync(mfa.status, services(request), user.id)
    return MfaStatusResponse(
        success=True,
        totpEnabled=state.enabled,
        recoveryCodesLeft=state.codes_left,
        removalDue=state.reset_due.astimezone(UTC) if state.reset_due else None,
    )
