"""The one place that turns errors into responses, all in the contract's shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from relatch.core.errors import InvalidInput, NotAuthenticated, RateLimited, RelatchError
from relatch.http import observe
from relatch.storage import outage

log = logging.getLogger(__name__)

# The database unreachable (contract: 503 with Retry-After, never a hang, never a 500).
# Bounded in time by storage/db.make_engine: connect and pool checkout timeouts.
UNAVAILABLE = "The service is temporarily unavailable, try again in a moment"
RETRY_AFTER_SECONDS = 5
# Pages outside the API, and the one API path a browser is sent to, answer a page.
PAGE = "/v1/oauth/authorize"
UNAVAILABLE_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Service unavailable</title>"
    "<h1>Service unavailable</h1><p>The service is temporarily unavailable. "
    "Try again in a moment.</p></html>"
)


def failure(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


def unavailable_response(path: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if path == PAGE or not path.startswith("/v1/"):
        return HTMLResponse(UNAVAILABLE_PAGE, status_code=503, headers=headers)
    return failure(503, UNAVAILABLE, headers)


def _describe(exc: RequestValidationError) -> str:
    """A short, useful message; never echoes the submitted values (they may be secrets)."""
    parts: list[str] = []
    for err in exc.errors():
        kind = err.get("type", "")
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        field = ".".join(loc)
        if kind == "json_invalid":
            return "Body is not valid JSON"
        if kind == "missing":
            parts.append(f"Missing field '{field}'" if field else "Missing body")
        elif kind in ("model_attributes_type", "dict_type") and not field:
            parts.append("Body must be a JSON object sent as application/json")
        elif kind == "string_too_long":
            limit = err.get("ctx", {}).get("max_length")
            parts.append(f"Field '{field}' must be at most {limit} characters long")
        elif kind == "string_unicode":  # a lone surrogate ("\ud800"), not Unicode text
            parts.append(f"Field '{field}' must be text without unpaired surrogates")
        else:
            expected = str(err.get("msg", "invalid value")).removeprefix("Input should be ")
            parts.append(f"Field '{field}' must be {expected}" if field else expected)
    return "; ".join(parts[:5]) or "Invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return failure(400, _describe(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid(req: Request, exc: InvalidInput) -> JSONResponse:
        observe.mark_refused(req.scope)
        return failure(200, exc.message)

    @app.exception_handler(NotAuthenticated)
    async def _unauth(_req: Request, exc: NotAuthenticated) -> JSONResponse:
        return failure(401, exc.message)

    @app.exception_handler(RateLimited)
    async def _limited(_req: Request, exc: RateLimited) -> JSONResponse:
        return failure(429, exc.message, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RelatchError)
    async def _handled(req: Request, exc: RelatchError) -> JSONResponse:
        observe.mark_refused(req.scope)
        return failure(200, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = {404: "Not found", 405: "Method not allowed"}.get(status, str(exc.detail))
        return failure(status, message, dict(exc.headers or {}))

    # Named by class and SQLSTATE only (storage/outage.py): no statement, no values.
    outages = outage.OutageLog(
        log, "database unavailable (%s): %s request(s) answered 503 since the last such line"
    )

    @app.exception_handler(SQLAlchemyError)
    async def _database(req: Request, exc: SQLAlchemyError) -> Response:
        # Availability: an outage of the database (a restart, a lost connection, the pool
        # empty) is a 503 the client may retry, not a 500 with a traceback at ERROR.
        if outage.unavailable(exc):
            outages.note(exc)
            return unavailable_response(req.url.path)
        return _internal(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        return _internal(exc)


def _internal(exc: Exception) -> JSONResponse:
    # Logged by type only: the exception text may quote a secret from the request.
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return failure(500, "Internal error")
