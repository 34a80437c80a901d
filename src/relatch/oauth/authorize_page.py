"""The authorize endpoint as a person sees it: sign in, then consent, then back to the client.

States (query string = the client's OAuth request, unchanged throughout):

    request ──invalid, no trusted redirect──> error page (400)
       │ invalid, redirect URI verified ────> back to client with ?error=
       ▼
    signed in? ──no / prompt=login──> SIGN-IN form ──POST ok──┐
       │ yes                                                   │
       ▼                                                       ▼
    consent remembered for client ⊇ scopes? ──no──> CONSENT form ──allow──> code/token
       │ yes (and no prompt=consent)                        └──deny──> ?error=access_denied
       ▼
    code / token to the redirect URI
"""

from __future__ import annotations

import logging
from typing import Any

from anyio.to_thread import run_sync
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError
from fastapi import Request
from fastapi.responses import Response

from relatch.core.errors import LoginFailed, RateLimited, TotpRequired
from relatch.http.client import request_meta, secure_cookies, services, set_device_cookie
from relatch.oauth import server, signin, store
from relatch.oauth.models import Client
from relatch.services import accounts, mfa
from relatch.services.context import Services
from relatch.services.meta import RequestMeta
from relatch.storage.models import User
from relatch.web import csrf
from relatch.web.templating import templates

log = logging.getLogger(__name__)

SCOPE_TEXT = {
    "openid": "Know who you are (your account id)",
    "email": "See your e-mail address",
    "profile": "See your name and username",
}
# Clickjacking (a framed consent page clicked through): never framed; no caching of a
# page that names the signed-in account. No form-action: consent redirects off-site.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    action = request.url.path + ("?" + request.url.query if request.url.query else "")
    ctx = {"csrf_field": csrf.FIELD, "csrf": csrf.csrf_token(request), "action": action}
    response = templates.TemplateResponse(
        request, template, {**ctx, **context}, status_code=status, headers=PAGE_HEADERS
    )
    csrf.set_cookie(request, response)
    return response


def _error_page(request: Request, error: OAuth2Error) -> Response:
    return _render(
        request,
        "oauth/error.html",
        status=400,
        error=error.error,
        description=error.get_error_description() or error.error,
    )


def _consent_grant(
    srv: server.RelatchAuthorizationServer, incoming: server.Incoming, user: User | None
) -> Any:
    return srv.get_consent_grant(server.AuthorizeRequest(incoming), end_user=user)


def _sign_in(svc: Services, meta: RequestMeta, form: dict[str, str]) -> User:
    user = accounts.check_password(svc, form.get("username", ""), form.get("password", ""), meta)
    # The second factor is part of signing in here too (and after a reset, still).
    mfa.check_second_factor(svc, user, form.get("totpToken"), meta)
    return user


async def handle(request: Request) -> Response:
    svc = services(request)
    try:
        incoming = await server.read(request, svc.settings.public_url, form=True)
    except Exception:  # (an unreadable body is the client's fault: never a 5xx)
        return Response("Bad request", status_code=400)
    form = dict(incoming.form)
    signed = await run_sync(signin.current, svc, request)
    user = signed.user if signed else None
    auth_time = signed.auth_time if signed else None
    srv = server.RelatchAuthorizationServer(svc, request_meta(request), auth_time)
    try:
        grant = await run_sync(_consent_grant, srv, incoming, user)
    except OAuth2Error as error:
        # Only a redirect URI verified against the client gets the error (no open redirect).
        if error.redirect_uri:
            return srv.handle_error_response(None, error)  # type: ignore[no-any-return]
        return _error_page(request, error)
    client: Client = grant.request.client
    step = form.get("step") if request.method == "POST" else None

    if step is not None:
        try:
            csrf.verify_csrf(request, form.get(csrf.FIELD))
        except csrf.CSRFRejected as exc:
            return _signin_or_consent(request, grant, client, user, error=exc.message, status=403)

    new_cookie: User | None = None
    # Lockout: a browser that signs in becomes a known device of the account.
    signin_meta = request_meta(request, new_device=True)
    if step == "signin":
        try:
            user = await run_sync(_sign_in, svc, signin_meta, form)
        except TotpRequired as exc:
            return _signin_page(request, client, form, exc.message, need_totp=True)
        except RateLimited as exc:
            return _signin_page(
                request,
                client,
                form,
                exc.message,
                status=429,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except LoginFailed as exc:
            return _signin_page(
                request, client, form, exc.message, need_totp=bool(form.get("totpToken"))
            )
        new_cookie = user
        srv = server.RelatchAuthorizationServer(svc, request_meta(request), None)
        grant = await run_sync(_consent_grant, srv, incoming, user)
    elif user is None or (grant.prompt == "login" and step != "consent"):
        return _signin_page(request, client, {}, None)

    assert user is not None
    scope = grant.request.scope or ""
    response: Response
    if step == "consent" and form.get("decision") in ("allow", "deny"):
        allowed = form["decision"] == "allow"
        if allowed:
            await run_sync(store.remember_consent, svc, user.id, client.client_id, scope)
        response = await run_sync(
            srv.create_authorization_response, grant.request, user if allowed else None, grant
        )
    else:
        prompt = grant.request.payload.data.get("prompt", "")
        remembered = await run_sync(store.has_consent, svc, user.id, client.client_id, scope)
        if remembered and "consent" not in prompt.split():
            response = await run_sync(srv.create_authorization_response, grant.request, user, grant)
        elif prompt == "none":
            refusal = ConsentRequiredError(redirect_uri=grant.redirect_uri)
            refusal.state = grant.request.payload.state
            response = srv.handle_error_response(None, refusal)
        else:
            response = _consent_page(request, client, user, scope)
    if new_cookie is not None:
        signin.issue(svc, new_cookie, response, secure=secure_cookies(request))
        set_device_cookie(request, response, signin_meta)
    return response


def _signin_or_consent(
    request: Request, grant: Any, client: Client, user: User | None, error: str, status: int
) -> Response:
    if user is None:
        return _signin_page(request, client, {}, error, status=status)
    return _consent_page(request, client, user, grant.request.scope or "", error, status)


def _signin_page(
    request: Request,
    client: Client,
    form: dict[str, str],
    error: str | None,
    *,
    need_totp: bool = False,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    response = _render(
        request,
        "oauth/signin.html",
        status=status,
        client_name=client.name,
        username=form.get("username", ""),
        error=error,
        need_totp=need_totp,
    )
    response.headers.update(headers or {})
    return response


def _consent_page(
    request: Request,
    client: Client,
    user: User,
    scope: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    scopes = [SCOPE_TEXT.get(s, s) for s in scope.split()]
    return _render(
        request,
        "oauth/consent.html",
        status=status,
        client_name=client.name,
        account=user.username,
        scopes=scopes,
        error=error,
    )
