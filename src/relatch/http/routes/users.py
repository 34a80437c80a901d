"""Accounts: create, log in, who am I."""

from __future__ import annotations

from datetime import UTC

from anyio.to_thread import run_sync
from fastapi import Query, Request

from relatch.auth.dependencies import authenticate
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import (
    CreateUserRequest,
    CreateUserResponse,
    GetJWTRequest,
    GetJWTResponse,
    GetUserResponse,
    LastAccessedProjects,
    StaffInfo,
    UserProjectsSortOrder,
)
from relatch.services import accounts, mfa
from relatch.services.account import Account
from relatch.services.context import Services

router = operations()


@router.post(
    "/api-user-create",
    operation_id="createUser",
    tags=["User"],
    summary="Create user",
    description="Create a new user and project",
)
async def create_user(body: CreateUserRequest, request: Request) -> CreateUserResponse:
    new = accounts.NewAccount(
        email=body.email,
        username=body.username,
        name=body.name,
        password=body.password,
        job_title=body.jobTitle,
        company_name=body.companyName,
    )
    # Awaited: the hash runs in the hashing pool, no request thread waits on it.
    user_id = await accounts.create_user(services(request), new, request_meta(request))
    return CreateUserResponse(success=True, id=user_id)


@router.post(
    "/api-login",
    operation_id="login",
    tags=["Login"],
    summary="Get JWT token",
    description="Get a JWT token to authenticate with the API.",
)
async def login(body: GetJWTRequest, request: Request) -> GetJWTResponse:
    svc = services(request)
    meta = request_meta(request)
    signed = await accounts.sign_in(
        svc, body.username, body.password, body.totpToken, meta, new_session=True
    )
    # The session record was written with the sign-in: only the JWT is left to sign.
    token = accounts.issue_session(svc, signed.account, session_id=signed.session_id)
    return GetJWTResponse(success=True, token=token)


def user_response(
    user: Account, mfa_configured: bool = False, *, staff_view: bool = False
) -> GetUserResponse:
    """The GetUserResponse of `user`. `staff_view`: staff reading another account by id
    (getUser), who also see whether it is suspended and why; an account reading itself
    is never suspended (a suspended account's credentials are refused)."""
    return GetUserResponse(
        success=True,
        id=user.id,
        username=user.username,
        name=user.name,
        email=user.email,
        created=user.created_at.astimezone(UTC),
        staffInfo=StaffInfo(isStaff=user.is_staff, hasSudoRights=False),
        # Until the address is proven (services/activation.py) the account is pending.
        pending=not user.email_verified,
        activated=user.email_verified,
        mfaConfigured=mfa_configured,
        jobTitle=user.job_title,
        companyName=user.company_name,
        passwordConfigured=user.password_configured,
        # Relatch has no projects, organizations or plans: empty, as the schema allows.
        tier="free",
        organizations=[],
        projects=[],
        experiments=[],
        suspended=user.suspended if staff_view else False,
        suspensionReason=user.suspension_reason if staff_view else None,
        notifications=[],
        projectsSortOrder=_sort_order(user.projects_sort_order),
        timezone=user.timezone,
        hasEnterpriseFeaturesAccess=False,
        lastAccessedProjects=LastAccessedProjects(projects=[], hasMoreProjects=False),
        privatePersonalProjectsUsed=0,
    )


def _sort_order(stored: str | None) -> UserProjectsSortOrder:
    # Only the schema's values are ever stored (UpdateUserRequest); NULL is the default.
    try:
        return UserProjectsSortOrder(stored or "")
    except ValueError:
        return UserProjectsSortOrder.created_desc


@router.get(
    "/api/user",
    operation_id="getCurrentUser",
    tags=["User"],
    summary="Get current user",
    description="Get information about the current user.",
)
async def get_current_user(
    request: Request,
    excludeProjects: bool | None = Query(default=None),  # noqa: N803 (Edge Impulse name)
) -> GetUserResponse:
    # One thread hop, not two (issue 12): under load each hop waits for the GIL behind
    # the sign-ins' database steps, and this is the cheap request clients poll.
    user, configured = await run_sync(_caller_and_factor, services(request), request)
    return user_response(user, mfa_configured=configured)


def _caller_and_factor(svc: Services, request: Request) -> tuple[Account, bool]:
    """The caller (`current_user`'s rules: any scheme, NotAuthenticated) and whether the
    account has a second factor."""
    user = authenticate(svc, request)
    return user, mfa.is_configured(svc, user.id)
