"""The served OpenAPI document, shaped like the Edge Impulse one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

OAUTH_SCOPES = {
    "openid": "Access to basic profile information",
    "email": "Access to email address",
    "profile": "Access to full profile information",
}

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyAuthentication": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "JWTAuthentication": {"type": "apiKey", "in": "cookie", "name": "jwt"},
    "JWTHttpHeaderAuthentication": {"type": "apiKey", "in": "header", "name": "x-jwt-token"},
    "OAuth2": {
        "type": "oauth2",
        "flows": {
            "authorizationCode": {
                "authorizationUrl": "/v1/oauth/authorize",
                "tokenUrl": "/v1/oauth/token",
                "scopes": OAUTH_SCOPES,
            },
            "implicit": {"authorizationUrl": "/v1/oauth/authorize", "scopes": OAUTH_SCOPES},
            "password": {"tokenUrl": "/v1/oauth/token", "scopes": OAUTH_SCOPES},
            "clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": OAUTH_SCOPES},
        },
    },
}
GLOBAL_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]

# Operations anyone may call (the seed marks them `security: []`).
PUBLIC_OPERATIONS = {
    "login",
    "createUser",
    "requestResetPassword",
    "verifyResetPassword",
    "resetPassword",
}

ERROR_RESPONSES = {
    "400": "Body is not JSON, lacks a required field, or has a wrong type",
    "429": "Too many attempts; see Retry-After",
}
# Only on the operations that need credentials (the contract's 401 outcome).
UNAUTHENTICATED = "Missing, bad, expired or revoked credentials"


# Credential management (auth/dependencies.py recent_session_user): its 401 says more.
RECENT_SIGN_IN = (
    "Missing, bad, expired or revoked credentials, or no recent sign-in: this operation "
    "needs a session JWT (x-jwt-token header or jwt cookie) from a sign-in within "
    "RELATCH_REAUTH_SECONDS (default 15 minutes); an API key or OAuth token is not enough"
)


def _plain_optionals(node: Any) -> Any:
    """`anyOf: [X, null]` becomes X: optional fields are plain, as in the seed."""
    if isinstance(node, dict):
        any_of = node.get("anyOf")
        if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
            other = next(x for x in any_of if x != {"type": "null"})
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            if node.get("default") is not None:
                rest["default"] = node["default"]
            node = {**other, **rest}
        return {k: _plain_optionals(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_optionals(x) for x in node]
    return node


def _generic(description: str) -> dict[str, Any]:
    """A documented error answer: GenericApiResponse, the contract's one error shape."""
    schema = {"$ref": "#/components/schemas/GenericApiResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Password change (auth/dependencies.py session_caller): its 401 says more.
SESSION_ONLY = (
    "Missing, bad, expired or revoked credentials, or not a session: this operation needs a "
    "session JWT (x-jwt-token header or jwt cookie); an API key or OAuth token is refused"
)


# The sessions operations (auth/dependencies.py own_session).
OWN_SESSION = (
    "Missing, bad, expired, signed-out or revoked credentials, or not a session: this "
    "operation needs a session JWT (x-jwt-token header or jwt cookie); an API key or OAuth "
    "token is refused"
)


# New recovery codes (services/mfa.regenerate_codes): its 401 says more.
RECENT_FACTOR = (
    "Missing, bad, expired or revoked credentials, or no recent sign-in with the second "
    "factor: this operation needs a session JWT (x-jwt-token header or jwt cookie) from a "
    "sign-in within RELATCH_REAUTH_SECONDS that passed TOTP; an API key or OAuth token is "
    "not enough"
)


def recent_factor_responses() -> dict[int | str, dict[str, Any]]:
    """Route `responses=` of the operations that need a recent sign-in with TOTP."""
    return {401: _generic(RECENT_FACTOR)}


def own_session_responses() -> dict[int | str, dict[str, Any]]:
    """Route `responses=` of the sessions operations."""
    return {401: _generic(OWN_SESSION)}


def recent_sign_in_responses() -> dict[int | str, dict[str, Any]]:
    """Route `responses=` of the operations behind `recent_session_user`."""
    return {401: _generic(RECENT_SIGN_IN)}


def session_only_responses() -> dict[int | str, dict[str, Any]]:
    """Route `responses=` of the operations behind `session_caller`."""
    return {401: _generic(SESSION_ONLY)}


class Operation(APIRoute):
    """An Edge Impulse operation: its JSON answer leaves unset optional fields out (plain
    optionals, as in the seed: a field is absent, never `null`). The response model is the
    handler's return type."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model_exclude_none"] = True
        super().__init__(path, endpoint, **kwargs)


def operations(tags: list[str] | None = None, *, recent_sign_in: bool = False) -> APIRouter:
    """The router of a module of Edge Impulse operations (http/routes/). `recent_sign_in`:
    its operations take `recent_session_user` and document the 401 that comes with it."""
    responses = recent_sign_in_responses() if recent_sign_in else None
    return APIRouter(tags=list(tags or []), route_class=Operation, responses=responses)


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title="Relatch (Edge Impulse user API)",
            version="1.0.0",
            routes=app.routes,
            servers=[{"url": "/v1"}],
        )
        # Paths relative to the /v1 server, as in the Edge Impulse document.
        doc["paths"] = {
            (p.removeprefix("/v1") if p.startswith("/v1/") else p): item
            for p, item in doc.get("paths", {}).items()
        }
        for item in doc["paths"].values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for code, text in ERROR_RESPONSES.items():
                    responses.setdefault(code, _generic(text))
                if op.get("operationId") in PUBLIC_OPERATIONS:
                    op["security"] = []
                else:
                    responses.setdefault("401", _generic(UNAUTHENTICATED))
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        components["securitySchemes"] = SECURITY_SCHEMES
        doc["security"] = GLOBAL_SECURITY
        app.openapi_schema = _plain_optionals(doc)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
