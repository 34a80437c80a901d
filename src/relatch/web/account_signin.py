"""The sign-in page of Relatch's own account pages (issue 14): a person signs in here, and
the browser holds the session cookie `jwt` that the sessions page reads.

    GET  /account/sign-in?next=/account/...   the form (already signed in: on to `next`)
    POST /account/sign-in                     username, password[, totpToken], next, CSRF
         -> 303 to `next` (default /account/sessions), with the `jwt` cookie
         -> or the form again, with one message

The form and its logic are the authorize page's (web/signin_form.py,
templates/_signin_fields.html): the same sign-in service, failure limits, second-factor
step and device cookie. What is this page's own:

- Session: one new server-side session record per sign-in (services/sign_in_sessions.py),
  as `POST /v1/api-login` makes, so it is listed on the sessions page and can be ended
  there. Its JWT goes into the `jwt` cookie as auth/cookies.py SESSION decides (HttpOnly
  against XSS, SameSite=Lax against CSRF, Secure when the public URL is https).
- Login CSRF (OWASP CSRF Prevention Cheat Sheet): another site must not sign the victim's
  browser into the attacker's account (whatever the victim then does, the attacker sees).
  The form's token is bound to this browser's nonce cookie (web/csrf.py: SameSite=Strict,
  never sent with a cross-site POST) and checked before any password is. After the sign-in
  the nonce is renewed (csrf.renew).
- Open redirect: `next` is only ever a path under /account on this origin (`safe_next`);
  anything else signs in to the sessions page. A phishing link cannot use this page to
  send a person who just signed in to a look-alike site.
- Enumeration: an unknown login and a wrong password get one page after the same work
  (signin_form). Empty fields are refused before any look-up, from the input alone.
"""

from __future__ import annotations

import functools
import re

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relatch.auth import cookies
from relatch.auth.dependencies import page_session
from relatch.auth.request import services
from relatch.core.errors import NotAuthenticated
from relatch.services import accounts
from relatch.web import csrf, i18n, rendering, signin_form
from relatch.web.account_page import PAGE as SESSIONS_PAGE
from relatch.web.account_page import SIGN_IN
from relatch.web.forms import FormState, read_form

router = APIRouter(include_in_schema=False)

PAGE = SIGN_IN
NEXT_FIELD = "next"
MAX_NEXT = 512


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    return message


EXPIRED = N_("This form has expired. Please send it again.")
NO_USERNAME = N_("Enter your username or e-mail address")
NO_PASSWORD = N_("Enter your password")

# Open redirect: the one shape `next` may have, matched on the text as sent (no URL parser's
# leniency: Python's and browsers' drop spaces, tabs and line breaks in ways of their own).
# A path under /account made of unreserved characters only (so no scheme, host, `//`,
# backslash, `%`, `@`, space or control character), then an optional plain query.
_NEXT = re.compile(r"(/account(?:/[A-Za-z0-9._~-]+)*/?)(?:\?[A-Za-z0-9._~=&-]*)?")


def safe_next(value: str | None) -> str | None:
    """`value` if it is a path under /account to go to after signing in, else None."""
    if not value or len(value) > MAX_NEXT:
        return None
    found = _NEXT.fullmatch(value)
    if found is None:
        return None
    path = found.group(1)
    # No dot segments (resolved by the browser, they could climb out of /account), and
    # never this page itself (a loop).
    if any(seg in (".", "..") for seg in path.split("/")) or path.startswith(PAGE):
        return None
    return value


def _target(request: Request, wanted: str | None) -> str:
    return wanted or rendering.url(SESSIONS_PAGE, i18n.explicit_language(request))


def _signed_in(request: Request) -> bool:
    try:
        page_session(services(request), request)
    except NotAuthenticated:
        return False
    return True


def _form(
    request: Request,
    form: FormState,
    wanted: str | None,
    *,
    need_totp: bool = False,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    chosen = i18n.explicit_language(request)
    return rendering.render(
        request,
        "account/sign_in.html",
        page_path=PAGE,
        page_params={NEXT_FIELD: wanted or ""},
        status=status,
        headers=headers,
        form=form,
        need_totp=need_totp,
        next_field=NEXT_FIELD,
        next=wanted or "",
        action=rendering.url(PAGE, chosen),
        link_reset=rendering.url("/reset-password", chosen),
    )


@router.get(PAGE, response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    wanted = safe_next(request.query_params.get(NEXT_FIELD))
    if await run_sync(_signed_in, request):
        return RedirectResponse(_target(request, wanted), status_code=303)
    return _form(request, FormState(), wanted)


@router.post(PAGE, response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    _ = rendering.gettext(request)
    form = await read_form(request, (*signin_form.FIELDS, NEXT_FIELD))
    wanted = safe_next(form.values.pop(NEXT_FIELD))
    form.errors.pop(NEXT_FIELD, None)
    need_totp = bool(form.values[signin_form.TOTP])
    try:
        # Login CSRF: checked before anything else (module docstring).
        csrf.verify_csrf(request, form.csrf)
    except csrf.CSRFRejected:
        form.form_error = _(EXPIRED)
        return _form(request, form, wanted, need_totp=need_totp, status=403)
    if not form.errors:
        if not form.values[signin_form.USERNAME]:
            form.errors[signin_form.USERNAME] = _(NO_USERNAME)
        if not form.values[signin_form.PASSWORD]:
            form.errors[signin_form.PASSWORD] = _(NO_PASSWORD)
    if form.errors:
        # From the input alone, before any look-up: nothing about an account is told.
        return _form(request, form, wanted, need_totp=need_totp, status=400)

    outcome = await signin_form.attempt(request, form.values)
    if outcome.user is None:
        form.form_error = outcome.message(_)
        return _form(
            request,
            form,
            wanted,
            need_totp=outcome.need_totp,
            status=outcome.status,
            headers=outcome.headers,
        )
    svc = services(request)
    # A new session record (listed on the sessions page), written in a worker thread.
    token = await run_sync(
        functools.partial(accounts.issue_session, svc, outcome.user, meta=outcome.meta)
    )
    response = RedirectResponse(_target(request, wanted), status_code=303)
    cookies.set_cookie(request, response, cookies.SESSION, token)
    signin_form.remember_device(request, response, outcome)
    csrf.renew(request, response)
    return response
