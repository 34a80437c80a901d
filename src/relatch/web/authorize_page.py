"""The authorize endpoint as a person sees it: sign in, then consent, then back to the client.

States (query string = the client's OAuth request, unchanged throughout):

    request ──invalid, no trusted redirect──> error page (400)
       │ invalid, redirect URI verified ────> back to client with ?error= (#error= for tokens)
       ▼
    signed in, and fresh enough? ──no, prompt=none──> back with error=login_required
       │ no: no session, prompt=login without a proof, max_age passed
       │     └──> SIGN-IN form ──POST ok (password + second factor)──┐ proof of this sign-in
       │ yes                                                           ▼
    address proven (activated)? ──no──> back with error=access_denied (activate first)
       │ yes
       ▼
    consent remembered for client ⊇ scopes? ──no──> CONSENT form ──allow──> code/token
       │ yes (and no prompt=consent)             (proof)        └──deny──> error=access_denied
       ▼
    code / token to the redirect URI

"Fresh enough" (web/reauth.py) is decided again at the consent POST: posting the consent
step is not a sign-in.
"""

from __future__ import annotations

import logging
from typing import Any

from anyio.to_thread import run_sync
from authlib.oauth2.rfc6749.errors import AccessDeniedError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from fastapi import Request
from fastapi.responses import Response

from relatch.auth.request import request_meta, services
from relatch.core.errors import ActivationRequired
from relatch.oauth import params, server
from relatch.services.account import Account
from relatch.storage import oauth_repo as store
from relatch.storage.oauth_records import Client
from relatch.web import csrf, i18n, reauth, signin, signin_form
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


# The authorize pages are in English (the OAuth client's own pages carry its language).
ENGLISH = i18n.translations(i18n.DEFAULT).gettext

# The error page says what went wrong in words of its own, never Authlib's description:
# those quote the request ("Redirect URI <anything> is not supported"), so anyone could
# put a sentence of their choice on a page of this service (text injection).
ERROR_TEXT = {
    "invalid_client": "The application that sent you here is not registered with this service.",
    "unsupported_response_type": "The application asked for a kind of answer this service "
    "does not give.",
}
REQUEST_REFUSED = "The application that sent you here made a request this service cannot accept."


def _error_page(request: Request, error: OAuth2Error) -> Response:
    return _render(
        request,
        "oauth/error.html",
        status=400,
        error=error.error,
        description=ERROR_TEXT.get(str(error.error), REQUEST_REFUSED),
    )


def _consent_grant(
    srv: server.RelatchAuthorizationServer, incoming: server.Incoming, user: Account | None
) -> Any:
    return server.quotable(
        lambda: srv.get_consent_grant(server.AuthorizeRequest(incoming), end_user=user)
    )


def _respond(srv: server.RelatchAuthorizationServer, grant: Any, user: Account | None) -> Response:
    response: Response = server.quotable(
        lambda: srv.create_authorization_response(grant.request, user, grant)
    )
    return response


def _refuse(srv: server.RelatchAuthorizationServer, grant: Any, error: OAuth2Error) -> Response:
    """An OIDC refusal (login_required, consent_required) to the verified redirect URI, in
    the response's encoding (fragment when it would have carried a token)."""
    error.redirect_uri = grant.redirect_uri
    error.redirect_fragment = params.carries_token(grant.request.payload.response_type)
    error.state = grant.request.payload.state
    return srv.handle_error_response(None, error)  # type: ignore[no-any-return]


async def handle(request: Request) -> Response:
    svc = services(request)
    try:
        incoming = await server.read(request, svc.settings.public_url, form=True)
    except Exception:  # (an unreadable body is the client's fault: never a 5xx)
        return Response("Bad request", status_code=400)
    form = dict(incoming.form)
    signed = await run_sync(signin.current, svc, request)
    user = signed.user if signed else None
    now = int(svc.clock().timestamp())
    srv = server.RelatchAuthorizationServer(
        svc, request_meta(request), signed.auth_time if signed else None
    )
    try:
        grant = await run_sync(_consent_grant, srv, incoming, user)
    except OAuth2Error as error:
        # Only a redirect URI verified against the client gets the error (no open redirect).
        if error.redirect_uri:
            return srv.handle_error_response(None, error)  # type: ignore[no-any-return]
        return _error_page(request, error)
    client: Client = grant.request.client
    step = form.get("step") if request.method == "POST" else None
    wanted = reauth.demand(grant.request.payload.data)
    query = request.url.query

    if step is not None:
        try:
            csrf.verify_csrf(request, form.get(csrf.FIELD))
        except csrf.CSRFRejected as exc:
            return _signin_or_consent(request, grant, client, user, error=exc.message, status=403)

    signed_in: signin_form.Outcome | None = None
    proof = ""
    if step == "signin":
        # The sign-in form of the pages (web/signin_form.py): the second factor is part of
        # signing in here too (and after a reset, still); limits, device cookie, messages.
        signed_in = await signin_form.attempt(request, form)
        if signed_in.user is None:
            return _signin_page(
                request,
                client,
                form,
                signed_in.message(ENGLISH),
                need_totp=signed_in.need_totp,
                status=signed_in.status,
                headers=signed_in.headers,
            )
        user = signed_in.user
        # This sign-in is the request's own: what prompt=login and max_age ask for, and
        # the auth_time of the ID token.
        srv = server.RelatchAuthorizationServer(svc, request_meta(request), now)
        grant = await run_sync(_consent_grant, srv, incoming, user)
        proof = reauth.prove(svc, query, user.id, now)
    else:
        # Forced re-authentication (OIDC Core 3.1.2.1), decided here, at every request
        # that could issue a code or token: a posted consent step is no proof of a sign-in.
        posted = form.get(reauth.FIELD, "") if step == "consent" and signed else ""
        proven = reauth.proven_at(svc, query, signed.user.id, posted, now) if signed else None
        if signed is None or not reauth.fresh_enough(wanted, signed.auth_time, now, proven):
            if wanted.silent:
                return _refuse(srv, grant, LoginRequiredError())
            return _signin_page(request, client, {}, None)
        proof = posted if proven is not None else ""

    assert user is not None
    scope = grant.request.scope or ""
    response: Response
    if not user.email_verified:
        # Account pre-hijacking (services/activation.py): an account whose address is not
        # proven consents to nothing, remembered consent included; the client hears
        # access_denied, saying why, at its verified redirect URI.
        denied = AccessDeniedError(description=ActivationRequired.public_message)
        response = _refuse(srv, grant, denied)
    elif step == "consent" and form.get("decision") in ("allow", "deny"):
        allowed = form["decision"] == "allow"
        if allowed:
            await run_sync(store.remember_consent, svc, user.id, client.client_id, scope)
        response = await run_sync(_respond, srv, grant, user if allowed else None)
    else:
        remembered = await run_sync(store.has_consent, svc, user.id, client.client_id, scope)
        if remembered and "consent" not in wanted.prompts:
            response = await run_sync(_respond, srv, grant, user)
        elif wanted.silent:
            response = _refuse(srv, grant, ConsentRequiredError())
        else:
            response = _consent_page(request, client, user, scope, proof=proof)
    if signed_in is not None and signed_in.user is not None:
        signin.issue(svc, request, signed_in.user, response)
        signin_form.remember_device(request, response, signed_in)
    return response


def _signin_or_consent(
    request: Request, grant: Any, client: Client, user: Account | None, error: str, status: int
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
    user: Account,
    scope: str,
    error: str | None = None,
    status: int = 200,
    proof: str = "",
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
        proof_field=reauth.FIELD,
        proof=proof,
    )
