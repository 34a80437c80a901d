"""A person's own account: updateCurrentUser (`POST /v1/api/user`) and deleteCurrentUser
(`DELETE /v1/api/user`). The same handlers serve one's own id under `/v1/api/users/{id}`
(routes/users_by_id.py)."""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import Depends, Request, Response

from relatch.auth.dependencies import SessionCaller, current_user, session_caller
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations, session_only_responses
from relatch.http.routes.own_session import ended
from relatch.http.schemas import DeleteUserRequest, GenericApiResponse, UpdateUserRequest
from relatch.services import deletion, profile
from relatch.services.account import Account

router = operations(["User"])


def changes_of(body: UpdateUserRequest) -> profile.ProfileChanges:
    # `experiments` is accepted and ignored: Relatch has none.
    return profile.ProfileChanges(
        name=body.name,
        job_title=body.jobTitle,
        company_name=body.companyName,
        timezone=body.timezone,
        projects_sort_order=body.projectsSortOrder.value if body.projectsSortOrder else None,
    )


@router.post(
    "/api/user",
    operation_id="updateCurrentUser",
    summary="Update current user",
    description="Update user properties such as name. Only fields set in the body change.",
)
async def update_current_user(
    body: UpdateUserRequest,
    request: Request,
    user: Account = Depends(current_user),  # noqa: B008
) -> GenericApiResponse:
    meta = request_meta(request)
    await run_sync(profile.update_profile, services(request), user, changes_of(body), meta)
    return GenericApiResponse(success=True)


@router.delete(
    "/api/user",
    operation_id="deleteCurrentUser",
    summary="Delete current user",
    description=(
        "Delete the current user, confirmed with the current password (and TOTP token when "
        "set). Every session, API key, OAuth grant and code of the account stops working. "
        "This function is only available through a JWT token."
    ),
    responses=session_only_responses(),
)
async def delete_current_user(
    body: DeleteUserRequest,
    request: Request,
    response: Response,
    caller: SessionCaller = Depends(session_caller),  # noqa: B008 (JWT only, as documented)
) -> GenericApiResponse:
    return await delete_own_account(body, request, response, caller)


async def delete_own_account(
    body: DeleteUserRequest, request: Request, response: Response, caller: SessionCaller
) -> GenericApiResponse:
    """deleteCurrentUser, and deleteUser on one's own id."""
    # Awaited: the password check runs in the hashing pool, no request thread waits on it.
    await deletion.delete_account(
        services(request), caller.user, body.password, body.totpToken, request_meta(request)
    )
    # The session is dead already (no account behind it); the browser forgets it too.
    return ended(request, response, own=True)
