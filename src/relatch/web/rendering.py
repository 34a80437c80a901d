"""What every translated page renders with: the negotiated language, the links to the same
page in the other languages, a fresh CSRF token and its cookie (web/csrf.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from relatch.web import csrf, i18n
from relatch.web.templating import templates


def url(path: str, lang: str | None, **params: str) -> str:
    """`path` with the non-empty `params`, and `?lang=` when a language was chosen."""
    query = {k: v for k, v in params.items() if v}
    if lang:
        query["lang"] = lang
    return f"{path}?{urlencode(query)}" if query else path


def gettext(request: Request) -> Any:
    """The `_` of a handler: the catalogue of the request's language."""
    return i18n.translations(i18n.negotiate(request)).gettext


def too_many(gettext: Any, retry_after: int) -> str:
    """A spent limit, in the page's language: how many minutes to wait (rounded up)."""
    minutes = max(1, -(-retry_after // 60))
    return str(gettext("Too many attempts. Please wait %(minutes)s minutes and try again.")) % {
        "minutes": minutes
    }


def render(
    request: Request,
    template: str,
    *,
    page_path: str,
    page_params: dict[str, str] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """`template` in the negotiated language, with a fresh CSRF token and its cookie.
    `page_path` and `page_params` make the language links (the page as it is now)."""
    params = page_params or {}
    ctx: dict[str, Any] = {
        "lang": i18n.negotiate(request),
        "csrf_field": csrf.FIELD,
        "csrf": csrf.csrf_token(request),
        "languages": i18n.LANGUAGES,
        "lang_links": {code: url(page_path, code, **params) for code in i18n.LANGUAGES},
        **context,
    }
    response = templates.TemplateResponse(
        request, template, ctx, status_code=status, headers=headers
    )
    csrf.set_cookie(request, response)
    return response
