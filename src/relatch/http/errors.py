"""The one place that turns errors into responses, all in the contract's shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relatch.core.errors import InvalidInput, NotAuthenticated, RateLimited, RelatchError

log = logging.getLogger(__name__)


def failure(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


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
    async def _invalid(_req: Request, exc: InvalidInput) -> JSONResponse:
        return failure(200, exc.message)

    @app.exception_handler(NotAuthenticated)
    async def _unauth(_req: Request, exc: NotAuthenticated) -> JSONResponse:
        return failure(401, exc.message)

    @app.exception_handler(RateLimited)
    async def _limited(_req: Request, exc: RateLimited) -> JSONResponse:
        return failure(429, exc.message, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RelatchError)
    async def _handled(_req: Request, exc: RelatchError) -> JSONResponse:
        return failure(200, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = {404: "Not found", 405: "Method not allowed"}.get(status, str(exc.detail))
        return failure(status, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        # Logged by type only: the exception text may quote a secret from the request.
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return failure(500, "Internal error")
