"""The reset page a person uses: ask for a code, set a new password, done.

Steps (each a GET that renders, each form a POST that redirects on success, PRG):
  1. GET /reset-password                 -> POST /reset-password/ask  -> 2 (same answer always)
  2. GET /reset-password?email=..        -> POST /reset-password/new  -> 3
     (after 1: GET /reset-password?sent=1, the address sealed in a cookie: sent_notice)
  3. GET /reset-password/done
The mail's link `?token=..` opens step 2 without a code to type (`?step=link`): web/code_carry.py
drops the token from the URL and carries it sealed to the POST, the address shown is the
account's (from the code's row, never from the URL), and the person types the new password
twice. A link that does not work (whatever the cause: one message) falls back to the code.
Works without JavaScript; web/static/reset.js only adds show/hide and a
strength hint. Refusals re-render the step with each message tied to its field.
"""

from __future__ import annotations

import hmac
from typing import Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from relatch.auth.request import request_meta, services, set_device_cookie
from relatch.core import codes, identity, passwords
from relatch.core.errors import CodeRejected, InvalidInput, PasswordRejected, RateLimited
from relatch.services import reset, reset_requests
from relatch.services.reset_link import check_link, reset_with_link
from relatch.web import code_carry, csrf, i18n, rendering, sent_notice
from relatch.web.forms import FormState, read_form

router = APIRouter(include_in_schema=False)

PAGE = "/reset-password"
MAX_EMAIL = identity.MAX_EMAIL


_url = rendering.url


def _render(
    request: Request,
    template: str,
    *,
    page_params: dict[str, str] | None = None,
    page_path: str = PAGE,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A reset step (web/rendering.py), with the links and limits its forms show."""
    chosen = i18n.explicit_language(request)
    params = page_params or {}
    ctx: dict[str, Any] = {
        "action_ask": _url(f"{PAGE}/ask", chosen),
        "action_new": _url(f"{PAGE}/new", chosen),
        "link_ask": _url(PAGE, chosen, email=params.get("email", ""), again="1"),
        "link_code": _url(PAGE, chosen, step="code"),
        "min_length": passwords.MIN_LENGTH,
        "max_length": passwords.MAX_LENGTH,
        "code_minutes": max(1, services(request).settings.reset_code_ttl // 60),
        "form": FormState(),
        "link": False,
        **context,
    }
    return rendering.render(
        request,
        template,
        page_path=page_path,
        page_params=params,
        status=status,
        headers=headers,
        **ctx,
    )


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    return message


# The refusals of core/passwords.py rules, as they read in English, so that the catalogue
# translates them too (a rule whose text changes falls back to English until updated).
KNOWN_REASONS = (
    N_(
        "Password is too common: it appears in lists of common or breached passwords; "
        "choose a longer or less predictable one, such as a few unrelated words"
    ),
    N_("Password contains your username: choose one that does not include it"),
    N_(
        "Password contains the part of your e-mail address before the @: choose one that "
        "does not include it"
    ),
)


_t = rendering.gettext


@router.get(PAGE, response_class=HTMLResponse)
async def reset_page(request: Request) -> Response:
    q = request.query_params
    chosen = i18n.explicit_language(request)
    # Text injection: the "a code is on its way to ..." notice names only the address this
    # browser posted (sealed cookie, web/sent_notice.py), never a query parameter.
    sent_to = sent_notice.read(request) if q.get("sent") == "1" else None
    email = (sent_to or q.get("email") or "").strip()[:MAX_EMAIL]
    if "token" in q or "code" in q:
        # Secrets in URLs: the token is read once and the URL that carried it is left at
        # once (see code_carry). A `code` (links mailed before the token existed) is dropped
        # unread: the person types it from the mail.
        target = (
            _url(PAGE, chosen, step="link")
            if "token" in q
            else _url(PAGE, chosen, email=email, step="" if email else "code")
        )
        response: Response = RedirectResponse(target, status_code=303)
        if "token" in q:
            code_carry.stash(request, response, q.get("token") or "")
        return response
    if q.get("step") == "link":
        return await _link_step(request)
    if q.get("again") or not (email or q.get("step") == "code" or q.get("sent") == "1"):
        return _render(
            request,
            "reset/ask.html",
            page_params={"email": email},
            form=FormState({"email": email}),
        )
    return _render(
        request,
        "reset/new.html",
        page_params={"email": email, "step": "code", **({"sent": "1"} if sent_to else {})},
        sent=sent_to is not None,
        email=sent_to or "",
        form=FormState({"email": email}),
    )


def _link_failed(_: Any, form: FormState) -> None:
    # Enumeration: one message for a wrong, forged, expired or used link.
    form.errors["code"] = _(
        "This link is wrong, already used or expired. Enter the code from the newest mail, "
        "or ask for a new code."
    )


async def _link_step(request: Request) -> Response:
    """Step 2 opened by the mail's link: the account's address and the password fields."""
    _ = _t(request)
    carried = code_carry.read(request)
    form = FormState()
    status, headers = 200, None
    try:
        email = await run_sync(check_link, services(request), carried, request_meta(request))
    except CodeRejected:
        _link_failed(_, form)
        status = 400
    except RateLimited as exc:
        form.form_error = _too_many(_, exc)
        status, headers = 429, {"Retry-After": str(exc.retry_after)}
    else:
        page = _render_link_form(request, email, form)
        code_carry.stash(request, page, carried)  # sealed again: 5 minutes from this render
        return page
    page = _render(
        request,
        "reset/new.html",
        page_params={"step": "code"},
        form=form,
        status=status,
        headers=headers,
    )
    if status == 400:
        code_carry.forget(request, page)  # this link does not work: nothing left to carry
    return page


def _render_link_form(request: Request, email: str, form: FormState) -> HTMLResponse:
    form.values["email"] = email  # the account's address, from the code's row
    return _render(
        request,
        "reset/new.html",
        page_params={"step": "link"},
        link=True,
        form=form,
    )


@router.post(f"{PAGE}/ask", response_class=HTMLResponse)
async def ask_for_code(request: Request) -> Response:
    _ = _t(request)
    form = await read_form(request, ("email",))
    email = form.values["email"]
    status = 400
    headers: dict[str, str] | None = None
    try:
        # CSRF: a forged cross-site post could flood an address with reset mails.
        csrf.verify_csrf(request, form.csrf)
        if not email:
            form.errors["email"] = _("Enter the e-mail address of your account")
        else:
            # Enumeration: request_reset records the request and never says whether an
            # account exists; every valid address gets the same redirect below.
            await reset_requests.request_reset_grouped(
                services(request), email, request_meta(request)
            )
            target = _url(PAGE, i18n.explicit_language(request), sent="1")
            response = RedirectResponse(target, status_code=303)
            sent_notice.remember(request, response, email)
            return response
    except csrf.CSRFRejected:
        form.form_error = _("This form has expired. Please send it again.")
        status = 403
    except InvalidInput:
        form.errors["email"] = _("Enter an e-mail address like name@example.com")
    except RateLimited as exc:
        form.form_error = _too_many(_, exc)
        status, headers = 429, {"Retry-After": str(exc.retry_after)}
    return _render(
        request,
        "reset/ask.html",
        page_params={"email": email},
        form=form,
        status=status,
        headers=headers,
    )


def _too_many(_: Any, exc: RateLimited) -> str:
    return rendering.too_many(_, exc.retry_after)


def _check_fields(_: Any, form: FormState, *, link: bool = False) -> None:
    """Refusals that need no database, each tied to its field (no attempt is counted).
    With the mail's link (`link`), there is no address or code to check."""
    v, errors = form.values, form.errors
    if not link:
        if not v["email"]:
            errors["email"] = _("Enter the e-mail address the code was sent to")
        if not v["code"]:
            errors["code"] = _("Enter the code from the mail")
        elif codes.canonical(v["code"]) is None:
            errors["code"] = _(
                "A code has 8 letters and digits, like 7KQ2-M9XA: copy it from the newest mail"
            )
    size = len(passwords.normalise(v["newPassword"]))
    if not v["newPassword"]:
        errors["newPassword"] = _("Choose a new password")
    elif size < passwords.MIN_LENGTH:
        errors["newPassword"] = _(
            "Use at least %(min)s characters: this one has %(n)s. A few unrelated words work well."
        ) % {"min": passwords.MIN_LENGTH, "n": size}
    elif size > passwords.MAX_LENGTH:
        errors["newPassword"] = _("Use at most %(max)s characters: this one has %(n)s.") % {
            "max": passwords.MAX_LENGTH,
            "n": size,
        }
    # Both values came in this request: not a secret comparison, but constant time costs nothing.
    if v["newPassword"] and not hmac.compare_digest(
        v["newPassword"].encode(), v["newPasswordRepeat"].encode()
    ):
        errors["newPasswordRepeat"] = _("The two passwords differ: type the same one twice")


@router.post(f"{PAGE}/new", response_class=HTMLResponse)
async def set_new_password(request: Request) -> Response:
    _ = _t(request)
    form = await read_form(request, ("email", "code", "newPassword", "newPasswordRepeat"))
    # The mail's link: the token comes sealed in the cookie (web/code_carry.py), and the
    # form then has no code field; a code typed in the form is used as a code.
    carried = "" if form.values["code"] else code_carry.read(request)
    link = bool(carried)
    status = 400
    headers: dict[str, str] | None = None
    try:
        # CSRF: a forged post could set a password the attacker chose with a leaked code.
        csrf.verify_csrf(request, form.csrf)
        _check_fields(_, form, link=link)
        if not form.errors:
            v = form.values
            # Lockout: this browser becomes a known device of the account (device cookie).
            meta = request_meta(request, new_device=True)
            if link:
                await reset_with_link(services(request), carried, v["newPassword"], meta)
            else:
                await reset.reset(services(request), v["email"], v["code"], v["newPassword"], meta)
            done = RedirectResponse(
                _url(f"{PAGE}/done", i18n.explicit_language(request)), status_code=303
            )
            code_carry.forget(request, done)
            set_device_cookie(request, done, meta)
            return done
    except csrf.CSRFRejected:
        form.form_error = _("This form has expired. Please send it again.")
        status = 403
    except CodeRejected:
        if link:
            _link_failed(_, form)
            link = False  # back to the code: this link does not work
        else:
            # Enumeration: one message for an unknown address and a wrong, used or expired
            # code.
            form.errors["code"] = _(
                "This code is wrong, already used or expired. Check the newest mail, or ask "
                "for a new code."
            )
    except PasswordRejected as exc:
        form.errors["newPassword"] = _(exc.message)
    except InvalidInput:
        form.errors["email"] = _("Enter an e-mail address like name@example.com")
    except RateLimited as exc:
        form.form_error = _too_many(_, exc)
        status, headers = 429, {"Retry-After": str(exc.retry_after)}
    # Never echo a password back into the page; the code and address are kept for a retry.
    form.values["newPassword"] = form.values["newPasswordRepeat"] = ""
    email = form.values["email"]
    page = _render(
        request,
        "reset/new.html",
        page_params={"step": "link"} if link else {"email": email, "step": "code"},
        link=link,
        email=email,
        form=form,
        status=status,
        headers=headers,
    )
    if link:
        code_carry.stash(request, page, carried)  # sealed again for the next try
    elif carried or request.cookies.get(code_carry.COOKIE):
        code_carry.forget(request, page)
    return page


@router.get(f"{PAGE}/done", response_class=HTMLResponse)
async def done_page(request: Request) -> Response:
    sign_in_url = services(request).settings.sign_in_url
    return _render(request, "reset/done.html", page_path=f"{PAGE}/done", sign_in_url=sign_in_url)
