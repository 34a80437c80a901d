"""Operations by id: getUser, updateUser, deleteUser, requestActivationCodeUser and
changePasswordUser under `/v1/api/users/{userId}`.

On the caller's own id each is exactly the current-user operation (Edge Impulse documents
them so): the same credentials (deleteUser and changePasswordUser take a session JWT only),
the same use case, the same answers. On another id, services/staff.py decides: only staff,
through a recent session JWT backed by TOTP; anyone else gets the answer for an id that
does not exist. changePasswordUser never works on another id.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio.to_thread import run_sync
from fastapi import Depends, Path, Request, Response

from relatch.auth.dependencies import Caller, any_caller, require_session
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.routes.account import changes_of, delete_own_account
from relatch.http.routes.password import change_own_password
from relatch.http.routes.users import user_response
from relatch.http.schemas import (
    ChangePasswordRequest,
    DeleteUserRequest,
    GenericApiResponse,
    GetUserResponse,
    UpdateUserRequest,
)
from relatch.services import activation, deletion, mfa, profile, staff
from relatch.services.account import Account

router = operations(["User"])

PATH = "/api/users/{userId}"
STAFF_NOTE = (
    " On another account's id only staff may call it, with a session JWT signed in within "
    "RELATCH_REAUTH_SECONDS on a staff account with TOTP set; anyone else gets the answer "
    "for an id that does not exist."
)
UserId = Path(description="User ID")


@dataclass(frozen=True)
class Target:
    """The account an operation by id acts on, and who acts: on the caller's own id,
    `actor` is None (the current-user operation, its own rules); on another id, the staff
    caller services/staff.py allowed (audited as the actor)."""

    account: Account
    actor: Account | None

    @property
    def own(self) -> bool:
        return self.actor is None


async def _target(request: Request, caller: Caller, user_id: int, *, read: bool = False) -> Target:
    """The caller's own account, or another one a staff caller may act on, else the
    refusal (services/staff.py: the answer for an id that does not exist)."""
    if user_id == caller.user.id:
        return Target(caller.user, None)
    meta = request_meta(request)
    account = await run_sync(
        lambda: staff.authorize(
            services(request), caller.user, caller.session, user_id, meta, read=read
        )
    )
    return Target(account, caller.user)


@router.get(
    PATH,
    operation_id="getUser",
    summary="Get user",
    description="Get information about a user." + STAFF_NOTE,
)
async def get_user(
    request: Request,
    userId: int = UserId,  # noqa: N803 (Edge Impulse name)
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> GetUserResponse:
    target = await _target(request, caller, userId, read=True)
    configured = await run_sync(mfa.is_configured, services(request), target.account.id)
    return user_response(target.account, mfa_configured=configured, staff_view=not target.own)


@router.post(
    PATH,
    operation_id="updateUser",
    summary="Update user",
    description="Change user properties such as name. Only fields set in the body change."
    + STAFF_NOTE,
)
async def update_user(
    body: UpdateUserRequest,
    request: Request,
    userId: int = UserId,  # noqa: N803
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> GenericApiResponse:
    target = await _target(request, caller, userId)
    svc, meta, changes = services(request), request_meta(request), changes_of(body)
    await run_sync(
        lambda: profile.update_profile(svc, target.account, changes, meta, actor=target.actor)
    )
    return GenericApiResponse(success=True)


@router.delete(
    PATH,
    operation_id="deleteUser",
    summary="Delete user",
    description="Delete a user, confirmed with the caller's current password (and TOTP token "
    "when set). On one's own id it takes a session JWT only, like deleteCurrentUser." + STAFF_NOTE,
)
async def delete_user(
    body: DeleteUserRequest,
    request: Request,
    response: Response,
    userId: int = UserId,  # noqa: N803
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> GenericApiResponse:
    target = await _target(request, caller, userId)
    if target.own:
        return await delete_own_account(body, request, response, require_session(caller))
    await deletion.delete_account(
        services(request),
        target.account,
        body.password,
        body.totpToken,
        request_meta(request),
        actor=target.actor,
    )
    return GenericApiResponse(success=True)


@router.post(
    PATH + "/request-activation",
    operation_id="requestActivationCodeUser",
    summary="Request activation code",
    description="Request a new activation code (the older one stops working)." + STAFF_NOTE,
)
async def request_activation_code_user(
    request: Request,
    userId: int = UserId,  # noqa: N803
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> GenericApiResponse:
    target = await _target(request, caller, userId)
    svc, meta = services(request), request_meta(request)
    await run_sync(lambda: activation.request_code(svc, target.account, meta, actor=target.actor))
    return GenericApiResponse(success=True)


@router.post(
    PATH + "/change-password",
    operation_id="changePasswordUser",
    summary="Change password",
    description="Change the password of one's own account (as changePasswordCurrentUser: "
    "a session JWT only). Nobody, staff included, sets another person's password; staff "
    "have an operator send a reset code instead.",
)
async def change_password_user(
    body: ChangePasswordRequest,
    request: Request,
    response: Response,
    userId: int = UserId,  # noqa: N803
    caller: Caller = Depends(any_caller),  # noqa: B008
) -> GenericApiResponse:
    # Not `_target`: no staff rule lets anyone act here on another id; that is refused.
    if userId == caller.user.id:
        return await change_own_password(body, request, response, require_session(caller))
    meta = request_meta(request)
    await run_sync(staff.refuse_password, services(request), caller.user, userId, meta)
    return GenericApiResponse(success=False)  # (refuse_password always raises)
