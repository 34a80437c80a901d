"""HTTP routes of the provider: /v1/oauth/* and the OpenID Connect discovery document.

The protocol endpoints answer in the shapes of their RFCs (`{"error": "invalid_grant"}`),
which OAuth2 client libraries parse; they are left out of the Edge Impulse OpenAPI document.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from anyio.to_thread import run_sync
from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from relatch.auth import bearer
from relatch.auth.request import request_meta, services
from relatch.oauth import keys, server
from relatch.oauth.grants import check_password_first, user_info
from relatch.storage.oauth_records import ANY_METHOD, GRANT_TYPES, SCOPES, SECRET_METHODS
from relatch.web import authorize_page

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=NO_STORE
    )


async def _incoming(request: Request) -> server.Incoming | JSONResponse:
    try:
        return await server.read(request, services(request).settings.public_url, form=True)
    except Exception:  # (any unreadable body is the client's fault: never a 5xx)
        return oauth_error(400, "invalid_request", "The request body could not be read")


@router.api_route("/oauth/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    return await authorize_page.handle(request)


async def _endpoint(request: Request, name: str | None) -> Response:
    incoming = await _incoming(request)
    if isinstance(incoming, JSONResponse):
        return incoming
    svc = services(request)
    meta = request_meta(request)
    # The password grant's argon2 verify is awaited here, not in Authlib's thread below.
    checked = await check_password_first(svc, meta, incoming.form) if name is None else None
    srv = server.RelatchAuthorizationServer(svc, meta, checked_password=checked)

    def run() -> Response:
        try:
            oauth_request = server.StarletteOAuth2Request(incoming)
        except OAuth2Error as error:
            status, body, headers = error()
            return srv.handle_response(status, body, headers)
        try:
            if name is None:
                response: Response = server.quotable(
                    lambda: srv.create_token_response(oauth_request)
                )
            else:
                response = server.quotable(
                    lambda: srv.create_endpoint_response(name, oauth_request)
                )
        except OAuth2Error as error:  # one Authlib could not word (server.quotable)
            status, body, headers = error()
            return srv.handle_response(status, body, headers)
        return response

    return await run_sync(run)


@router.post("/oauth/token")
async def token(request: Request) -> Response:
    return await _endpoint(request, None)


@router.post("/oauth/revoke")
async def revoke(request: Request) -> Response:
    return await _endpoint(request, "revocation")


@router.post("/oauth/introspect")
async def introspect(request: Request) -> Response:
    return await _endpoint(request, "introspection")


@router.api_route("/oauth/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> Response:
    svc = services(request)

    def run() -> Response:
        try:
            tok = bearer.validate(svc, request.headers, ["openid"])
        except OAuth2Error as error:
            status, body, headers = error()
            return Response(json.dumps(body), status_code=status, headers=dict(headers))
        if tok.user is None:
            return oauth_error(401, "invalid_token", "This token acts for no user")
        return JSONResponse(dict(user_info(tok.user, tok.scope)), headers=NO_STORE)

    return await run_sync(run)


@router.get("/oauth/jwks")
async def jwks(request: Request) -> JSONResponse:
    svc = services(request)

    def run() -> dict[str, Any]:
        keys.current(svc)  # a key exists before anyone needs to verify with it
        return keys.jwks(svc)

    return JSONResponse(await run_sync(run), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> JSONResponse:
    settings = services(request).settings
    base = settings.issuer + "/oauth"
    return JSONResponse(
        {
            "issuer": settings.issuer,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
            "jwks_uri": base + "/jwks",
            "revocation_endpoint": base + "/revoke",
            "introspection_endpoint": base + "/introspect",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code", "token", "id_token", "id_token token"],
            # Per response type (oauth/params.py): the code in the query only; a token
            # or ID token in the fragment only, never the query; form_post is not served.
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": list(GRANT_TYPES),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [keys.ALG],
            # The lists the grants and endpoints enforce (storage/oauth_records.py).
            "token_endpoint_auth_methods_supported": list(ANY_METHOD),
            "revocation_endpoint_auth_methods_supported": list(ANY_METHOD),
            "introspection_endpoint_auth_methods_supported": list(SECRET_METHODS),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "email",
                "email_verified",
                "name",
                "preferred_username",
            ],
            "prompt_values_supported": ["none", "login", "consent"],
        }
    )
