"""Security headers of the server-rendered pages, as a pure ASGI middleware.

Applies to every path outside the API prefix (/v1/ has its own JSON rules and the
Swagger UI at /v1/docs needs its CDN), so the reset page and anything added beside it
get them without having to remember.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# XSS: no inline script or style and nothing from another origin; a page cannot be framed
# (clickjacking) nor post its form elsewhere (form hijacking after an injection).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    # A code or an address in our URL must never reach another site through Referer.
    (b"referrer-policy", b"no-referrer"),
    # Clickjacking, for browsers that predate frame-ancestors.
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


class PageHeaders:
    """Adds PAGE_HEADERS to responses outside `api_prefix`; HTML pages also get no-store.

    Caching: the reset pages carry an address, a CSRF token and sometimes a code in a form
    value; none of it may be kept by the browser's back-forward cache or a shared proxy.
    Static files keep their normal caching.
    """

    def __init__(self, app: ASGIApp, api_prefix: str = "/v1/") -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.api_prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.extend(h for h in PAGE_HEADERS if h[0] not in names)
                ctype = dict(headers).get(b"content-type", b"")
                page = ctype.startswith(b"text/html") or not path.startswith("/static/")
                if page and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
