"""Pure ASGI middleware: body cap, request id, security headers, trusted hosts."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relatch.http import observe
from relatch.infra import logs


class BodyLimit:
    """Reads the body up to `limit` bytes before the app sees it; larger is a 400.

    DoS: an unbounded body would let one client hold memory and a worker.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    payload = json.dumps(
        {"success": False, "error": f"Request body is larger than {limit} bytes"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContext:
    """A request id for logs and audit rows, headers every response carries, and the
    request's outcome and duration for the metrics (`metrics=False`: not counted).

    The request's `RequestLog` (infra/logs.py) is set for the whole handling, so every
    log line written meanwhile names the request, and uvicorn's access line its outcome.
    """

    def __init__(self, app: ASGIApp, metrics: bool = True) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        # Not reset afterwards: uvicorn runs each request in a task of its own, and the
        # 500 of an unhandled error is sent (and logged) outside this middleware.
        current = logs.RequestLog(request_id, scope)
        logs.CURRENT.set(current)
        api = scope.get("path", "").startswith("/v1/")
        status: int | None = None  # until the answer starts

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                current.outcome = observe.outcome(status, scope)
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", request_id.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if api and b"cache-control" not in names:
                    # Tokens and account data must not sit in shared caches.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if status is None:  # answered by Starlette's outermost handler, after this one
                status = 500
                current.outcome = observe.outcome(status, scope)
            raise
        finally:
            # (Cancelled before an answer, at shutdown: nothing to count.)
            if self.metrics and status is not None:
                observe.count(scope, status, time.perf_counter() - started)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(public_url: str, extra: str | None) -> list[str]:
    """The host of RELATCH_PUBLIC_URL, loopback, and RELATCH_ALLOWED_HOSTS."""
    host = (urlsplit(public_url).hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal, as the Host header carries it
    hosts = [host, *LOOPBACK_HOSTS, *(h.strip().lower() for h in (extra or "").split(","))]
    return list(dict.fromkeys(h for h in hosts if h))


class TrustedHosts:
    """Only the configured hosts are served; any other Host header is a 400.

    Host header poisoning (issue 8; OWASP WSTG-INPV-17): URLs built from the request, like
    the trailing-slash redirect, pointed at whatever Host the client sent
    (`GET /reset-password/` with `Host: evil.example` redirected to evil.example), and a
    shared cache could keep that for everyone. Starlette's TrustedHostMiddleware decides;
    this class only gives its refusal the contract's error shape.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(
            self._trusted, allowed_hosts=list(hosts), www_redirect=False
        )

    async def _trusted(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["relatch.trusted_host"] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.check(scope, receive, send)
            return

        async def send_refusal_as_json(message: Message) -> None:
            if scope.get("relatch.trusted_host"):
                await send(message)
            elif message["type"] == "http.response.start":
                payload = json.dumps({"success": False, "error": "Invalid Host header"})
                await _json(send, 400, payload.encode())
            # Starlette's plain-text body of the refusal is dropped.

        await self.check(scope, receive, send_refusal_as_json)


async def _json(send: Send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
