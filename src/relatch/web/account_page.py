"""The "my sessions" page (issue 14): where the account is signed in, and which apps hold
OAuth grants, with a button to end each session, to end all the others and to revoke each
app. The same services as the JSON operations (services/sign_in_sessions.py,
services/oauth_apps.py), audited the same way.

    GET  /account/sessions                    the page (or "you are not signed in", 401)
    POST /account/sessions/end      session=  end one (the current one: sign out)
    POST /account/sessions/end-others         end all but this one
    POST /account/apps/revoke       app=      revoke one app's grants and tokens

Each POST answers 303 back to the page with a fixed notice (`?done=`, PRG), or the page
again with the refusal. Works without JavaScript.

- Who: the `jwt` cookie only (auth/dependencies.py `page_session`): a page is a browser.
- CSRF: every form carries the token of web/csrf.py and every action is a POST; the token
  is checked before anything else, so a forged cross-site form ends nothing (the owner who
  suspects a thief would otherwise be signed out by any site they visit). A GET never acts.
- Enumeration: a session id or app id that is not the account's own (unknown, ended or
  another person's) gets one answer, as in the JSON operations.
- Text injection: the notice is chosen by a key from a fixed table; nothing of the query
  is shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from anyio.to_thread import run_sync
from babel.dates import format_datetime
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relatch.auth import cookies
from relatch.auth.dependencies import SessionCaller, page_session
from relatch.auth.request import request_meta, services
from relatch.core.errors import NotAuthenticated, OAuthAppNotFound, SessionNotFound
from relatch.services import oauth_apps, sign_in_sessions
from relatch.web import csrf, i18n, rendering
from relatch.web.forms import FormState, read_form

router = APIRouter(include_in_schema=False)

PAGE = "/account/sessions"
END = f"{PAGE}/end"
END_OTHERS = f"{PAGE}/end-others"
REVOKE = "/account/apps/revoke"
SIGN_IN = "/account/sign-in"  # web/account_signin.py
SESSION_FIELD = "session"
APP_FIELD = "app"


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    return message


# `?done=` -> the notice shown once after an action (never text from the URL).
NOTICES = {
    "session": N_("The session was ended. Whoever used it is signed out."),
    "others": N_("Every other session was ended. Only this one is still signed in."),
    "app": N_("The app's access was revoked. It will have to ask you again."),
    "signed-out": N_("You are signed out on this device."),
}
EXPIRED = N_("This form has expired. Please send it again.")
SESSION_GONE = N_("This session has already ended, or is not one of yours.")
APP_GONE = N_("This app no longer has access to your account, or never had.")


def _when(moment: datetime, lang: str) -> str:
    return str(format_datetime(moment.astimezone(UTC), "long", tzinfo=UTC, locale=lang))


def _links(request: Request) -> dict[str, Any]:
    chosen = i18n.explicit_language(request)
    return {
        "action_end": rendering.url(END, chosen),
        "action_end_others": rendering.url(END_OTHERS, chosen),
        "action_revoke": rendering.url(REVOKE, chosen),
        "link_reset": rendering.url("/reset-password", chosen),
        # RELATCH_SIGN_IN_URL, when set, wins over it (templates/account/signed_out.html).
        "link_sign_in": rendering.url(SIGN_IN, chosen),
    }


def _signed_out(request: Request, notice: str | None = None) -> HTMLResponse:
    """Nobody (or no live session) signed in: say so, and where to sign in. 401, like the
    API, but a page a person can read."""
    _ = rendering.gettext(request)
    return rendering.render(
        request,
        "account/signed_out.html",
        page_path=PAGE,
        status=401,
        notice=_(notice) if notice else None,
        sign_in_url=services(request).settings.sign_in_url,
        **_links(request),
    )


async def _page(
    request: Request,
    caller: SessionCaller,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    svc = services(request)
    lang = i18n.negotiate(request)
    _ = rendering.gettext(request)
    views = await run_sync(sign_in_sessions.listed, svc, caller.user, caller.session)
    apps = await run_sync(oauth_apps.listed, svc, caller.user)
    sessions = [
        {
            "id": v.id,
            "created": _when(v.created, lang),
            "created_iso": v.created.astimezone(UTC).isoformat(),
            "last_seen": _when(v.last_seen, lang),
            "last_seen_iso": v.last_seen.astimezone(UTC).isoformat(),
            "user_agent": v.user_agent,
            "network": v.network,
            "current": v.current,
        }
        for v in views
    ]
    listed_apps = [
        {
            "id": a.client_id,
            "name": a.name,
            "scopes": sorted(a.scopes),
            "granted": _when(a.granted, lang),
            "granted_iso": a.granted.astimezone(UTC).isoformat(),
        }
        for a in apps
    ]
    return rendering.render(
        request,
        "account/sessions.html",
        page_path=PAGE,
        status=status,
        account=caller.user.username,
        sessions=sessions,
        others=any(not s["current"] for s in sessions) or caller.session.session_id is None,
        apps=listed_apps,
        notice=_(notice) if notice else None,
        form=FormState(form_error=_(error) if error else None),
        session_field=SESSION_FIELD,
        app_field=APP_FIELD,
        **_links(request),
    )


def _signed_in(request: Request) -> SessionCaller | None:
    try:
        return page_session(services(request), request)
    except NotAuthenticated:
        return None


@router.get(PAGE, response_class=HTMLResponse)
async def sessions_page(request: Request) -> Response:
    done = request.query_params.get("done", "")
    caller = await run_sync(_signed_in, request)
    # A link could carry any `done`: each notice shows only where it can be true.
    if caller is None:
        return _signed_out(request, NOTICES[done] if done == "signed-out" else None)
    return await _page(request, caller, notice=NOTICES.get(done) if done != "signed-out" else None)


# An action: the caller and the posted form in, a redirect (the `done` key) out; a
# refusal raises SessionNotFound or OAuthAppNotFound.
Action = Callable[[Request, SessionCaller, FormState, Response], Awaitable[str]]


async def _act(request: Request, fields: tuple[str, ...], action: Action) -> Response:
    form = await read_form(request, fields)
    try:
        # CSRF first: a forged post learns nothing and changes nothing (module docstring).
        csrf.verify_csrf(request, form.csrf)
    except csrf.CSRFRejected:
        caller = await run_sync(_signed_in, request)
        if caller is None:
            return _signed_out(request)
        return await _page(request, caller, error=EXPIRED, status=403)
    caller = await run_sync(_signed_in, request)
    if caller is None:
        return _signed_out(request)
    redirect = RedirectResponse(PAGE, status_code=303)
    try:
        done = await action(request, caller, form, redirect)
    except SessionNotFound:
        return await _page(request, caller, error=SESSION_GONE, status=404)
    except OAuthAppNotFound:
        return await _page(request, caller, error=APP_GONE, status=404)
    redirect.headers["location"] = rendering.url(PAGE, i18n.explicit_language(request), done=done)
    return redirect


async def _end_one(
    request: Request, caller: SessionCaller, form: FormState, response: Response
) -> str:
    session_id = form.values[SESSION_FIELD]
    if not session_id or form.errors:
        raise SessionNotFound()
    own = await run_sync(
        sign_in_sessions.end_one,
        services(request),
        caller.user,
        caller.session,
        session_id,
        request_meta(request),
    )
    if own:
        cookies.clear(request, response, cookies.SESSION)
        return "signed-out"
    return "session"


async def _end_others(
    request: Request, caller: SessionCaller, form: FormState, response: Response
) -> str:
    meta = request_meta(request)
    await run_sync(
        sign_in_sessions.end_others, services(request), caller.user, caller.session, meta
    )
    if caller.session.session_id is None:
        # A pre-upgrade JWT (no session record) ended itself with the others.
        cookies.clear(request, response, cookies.SESSION)
        return "signed-out"
    return "others"


async def _revoke(
    request: Request, caller: SessionCaller, form: FormState, response: Response
) -> str:
    client_id = form.values[APP_FIELD]
    if not client_id or form.errors:
        raise OAuthAppNotFound()
    meta = request_meta(request)
    await run_sync(oauth_apps.revoke, services(request), caller.user, client_id[:64], meta)
    return "app"


@router.post(END, response_class=HTMLResponse)
async def end_session(request: Request) -> Response:
    return await _act(request, (SESSION_FIELD,), _end_one)


@router.post(END_OTHERS, response_class=HTMLResponse)
async def end_other_sessions(request: Request) -> Response:
    return await _act(request, (), _end_others)


@router.post(REVOKE, response_class=HTMLResponse)
async def revoke_app(request: Request) -> Response:
    return await _act(request, (APP_FIELD,), _revoke)
