"""The "this was not me" pages: `GET /not-me?token=...` shows, `POST /not-me` confirms.

The GET changes nothing, so mail scanners that prefetch links cannot trigger it; the POST
needs the CSRF field (web/csrf.py) and consumes the one-time link.
"""

from __future__ import annotations

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relatch.auth.request import request_meta, services
from relatch.core.errors import LinkRejected
from relatch.services import not_me
from relatch.web import csrf
from relatch.web.forms import read_form
from relatch.web.templating import templates

router = APIRouter(include_in_schema=False)

TOKEN_FIELD = "token"  # noqa: S105 (a form field name)


def _page(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, f"not_me/{name}.html", {"lang": "en", **context}, status_code=status
    )
    # The token is in the URL and the form: never cached, never sent on as a Referer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    csrf.set_cookie(request, response)
    return response


@router.get("/not-me", response_class=HTMLResponse)
async def show(request: Request, token: str | None = None) -> HTMLResponse:
    try:
        await run_sync(not_me.check, services(request), token, request_meta(request))
    except LinkRejected as exc:
        return _page(request, "invalid", 400, message=exc.message)
    return _page(
        request,
        "confirm",
        token=token,
        token_field=TOKEN_FIELD,
        csrf_field=csrf.FIELD,
        csrf_token=csrf.csrf_token(request),
    )


@router.post("/not-me", response_class=HTMLResponse)
async def confirm(request: Request) -> HTMLResponse:
    form = await read_form(request, (TOKEN_FIELD,))
    token = form.values[TOKEN_FIELD] or None
    try:
        csrf.verify_csrf(request, form.csrf)
    except csrf.CSRFRejected as exc:
        # CSRF: a cross-site form cannot sign every session out on the owner's behalf.
        return _page(
            request,
            "confirm",
            403,
            error=exc.message,
            token=token,
            token_field=TOKEN_FIELD,
            csrf_field=csrf.FIELD,
            csrf_token=csrf.csrf_token(request),
        )
    try:
        await run_sync(not_me.confirm, services(request), token, request_meta(request))
    except LinkRejected as exc:
        return _page(request, "invalid", 400, message=exc.message)
    return _page(request, "done")
