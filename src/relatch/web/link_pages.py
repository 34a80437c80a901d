"""The pages of a mailed one-time link: `GET <path>?token=...` shows, `POST <path>` acts.

Used by "this was not me" (web/not_me.py) and the undo of a changed address
(web/email_undo.py). Each has a template folder with `confirm.html`, `done.html` and
`invalid.html`.

Mail scanners and link previewers fetch links: the GET only checks the link and changes
nothing. The POST needs the CSRF field (web/csrf.py: a cross-site form cannot act on the
owner's behalf) and uses the one-time link up.
"""

from __future__ import annotations

from collections.abc import Callable

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from relatch.auth.request import request_meta, services
from relatch.core.errors import LinkRejected, RelatchError
from relatch.core.meta import RequestMeta
from relatch.services.context import Services
from relatch.web import csrf
from relatch.web.forms import read_form
from relatch.web.templating import templates

TOKEN_FIELD = "token"  # noqa: S105 (a form field name)

Step = Callable[[Services, str | None, RequestMeta], None]


def link_pages(
    path: str,
    folder: str,
    check: Step,
    act: Step,
    refused: tuple[type[RelatchError], ...] = (LinkRejected,),
) -> APIRouter:
    """The GET and POST of one kind of link. `check` raises LinkRejected for a dead link;
    `act` raises one of `refused`, shown on the invalid page with its message."""
    router = APIRouter(include_in_schema=False)

    def page(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
        response = templates.TemplateResponse(
            request, f"{folder}/{name}.html", {"lang": "en", **context}, status_code=status
        )
        # The token is in the URL and the form: never cached, never sent on as a Referer.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        csrf.set_cookie(request, response)
        return response

    def form(
        request: Request, token: str | None, status: int = 200, **extra: object
    ) -> HTMLResponse:
        return page(
            request,
            "confirm",
            status,
            token=token,
            token_field=TOKEN_FIELD,
            csrf_field=csrf.FIELD,
            csrf_token=csrf.csrf_token(request),
            action=path,
            **extra,
        )

    @router.get(path, response_class=HTMLResponse)
    async def show(request: Request, token: str | None = None) -> HTMLResponse:
        try:
            await run_sync(check, services(request), token, request_meta(request))
        except LinkRejected as exc:
            return page(request, "invalid", 400, message=exc.message)
        return form(request, token)

    @router.post(path, response_class=HTMLResponse)
    async def confirm(request: Request) -> HTMLResponse:
        data = await read_form(request, (TOKEN_FIELD,))
        token = data.values[TOKEN_FIELD] or None
        try:
            csrf.verify_csrf(request, data.csrf)
        except csrf.CSRFRejected as exc:
            return form(request, token, 403, error=exc.message)
        try:
            await run_sync(act, services(request), token, request_meta(request))
        except refused as exc:
            return page(request, "invalid", 400, message=exc.message)
        return page(request, "done")

    return router
