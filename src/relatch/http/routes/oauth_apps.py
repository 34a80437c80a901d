"""The OAuth apps holding grants or tokens for the signed-in account (issue 14; Relatch's
own operations, tag "OAuth apps"): list them, revoke one.

Session JWT only (auth/dependencies.py `own_session`): an app's own bearer token must not
list or revoke the others, nor a leaked API key take the owner's apps away.
"""

from __future__ import annotations

from datetime import UTC

from anyio.to_thread import run_sync
from fastapi import Depends, Request
from fastapi import Path as PathParam

from relatch.auth.dependencies import SessionCaller, own_session
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations, own_session_responses
from relatch.http.schemas import GenericApiResponse
from relatch.http.schemas_sessions import ListOAuthAppsResponse, OAuthAppInfo
from relatch.services import oauth_apps

router = operations(["OAuth apps"])
OWN = own_session_responses()


@router.get(
    "/api/user/oauth-apps",
    operation_id="listOAuthApps",
    summary="List the apps holding OAuth grants",
    description=(
        "The OAuth clients that hold a consent or a live token for the current user, with "
        "their scopes and when they were first let in. Only available through a session JWT."
    ),
    responses=OWN,
)
async def list_apps(
    request: Request,
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> ListOAuthAppsResponse:
    apps = await run_sync(oauth_apps.listed, services(request), caller.user)
    return ListOAuthAppsResponse(
        success=True,
        apps=[
            OAuthAppInfo(
                clientId=a.client_id,
                name=a.name,
                scopes=sorted(a.scopes),
                granted=a.granted.astimezone(UTC),
            )
            for a in apps
        ],
    )


@router.delete(
    "/api/user/oauth-apps/{clientId}",
    operation_id="revokeOAuthApp",
    summary="Revoke an app",
    description=(
        "Every access and refresh token, unused code and the consent of the current user at "
        "this OAuth client go. A client holding nothing for the current user answers "
        "'No grant for this app'. Only available through a session JWT."
    ),
    responses=OWN,
)
async def revoke_app(
    request: Request,
    clientId: str = PathParam(min_length=1, max_length=64),  # noqa: N803 (Edge Impulse style)
    caller: SessionCaller = Depends(own_session),  # noqa: B008
) -> GenericApiResponse:
    meta = request_meta(request)
    await run_sync(oauth_apps.revoke, services(request), caller.user, clientId, meta)
    return GenericApiResponse(success=True)
