"""API keys of the signed-in account: `/v1/api/user/apikeys` (Relatch's own operations).

Creating and revoking need a recent sign-in (`recent_session_user`): a key minted with a
stolen session outlives it (ASVS 5.0 7.5.1). Creating also needs a proven address
(`activated_recent_user`: account pre-hijacking, services/activation.py). Listing shows
prefixes only: any scheme.
"""

from __future__ import annotations

from datetime import UTC

from anyio.to_thread import run_sync
from fastapi import Depends, Request
from fastapi import Path as PathParam

from relatch.auth.dependencies import activated_recent_user, current_user, recent_session_user
from relatch.auth.request import request_meta, services
from relatch.http.openapi import operations
from relatch.http.schemas import (
    ApiKeyInfo,
    CreateApiKeyRequest,
    CreateApiKeyResponse,
    GenericApiResponse,
    ListApiKeysResponse,
)
from relatch.services import api_keys
from relatch.services.account import Account

router = operations(["API keys"])
recent = operations(recent_sign_in=True)  # create, revoke (tags: `router`'s)


def _info(k: api_keys.KeyInfo) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=k.id,
        name=k.name,
        prefix=k.prefix,
        created=k.created_at.astimezone(UTC),
        lastUsed=k.last_used_at.astimezone(UTC) if k.last_used_at else None,
    )


@router.get(
    "/api/user/apikeys",
    operation_id="listApiKeys",
    summary="List API keys",
    description="The live API keys of the current user (prefixes only, never the keys).",
)
async def list_keys(request: Request, user: Account = Depends(current_user)) -> ListApiKeysResponse:  # noqa: B008
    keys = await run_sync(api_keys.list_keys, services(request), user.id)
    return ListApiKeysResponse(success=True, apiKeys=[_info(k) for k in keys])


@recent.post(
    "/api/user/apikeys",
    operation_id="createApiKey",
    summary="Create an API key",
    description="A new API key for the current user. The key is in this response only.",
)
async def create_key(
    request: Request,
    body: CreateApiKeyRequest | None = None,
    user: Account = Depends(activated_recent_user),  # noqa: B008
) -> CreateApiKeyResponse:
    name = body.name if body else None
    new = await run_sync(api_keys.create, services(request), user.id, name, request_meta(request))
    return CreateApiKeyResponse(
        success=True, id=new.info.id, name=new.info.name, prefix=new.info.prefix, apiKey=new.key
    )


@recent.delete(
    "/api/user/apikeys/{keyId}",
    operation_id="revokeApiKey",
    summary="Revoke an API key",
    description="Revoke one of the current user's API keys; it is refused from then on.",
)
async def revoke_key(
    request: Request,
    keyId: int = PathParam(ge=1, le=2**62),  # noqa: N803 (Edge Impulse naming style)
    user: Account = Depends(recent_session_user),  # noqa: B008
) -> GenericApiResponse:
    await run_sync(
        lambda: api_keys.revoke(services(request), keyId, request_meta(request), user_id=user.id)
    )
    return GenericApiResponse(success=True)


router.include_router(recent)
