"""Carrying a reset code from the mail's link into the form, without leaving it in the URL.

Design: `GET /reset-password?email=..&code=..` does not render the code. It seals the code
into a short-lived cookie and redirects (303) to the same page without `code`, which reads
the cookie once, deletes it, and puts the code only in the form's value of a `no-store`
response. So the code is gone from the address bar, the history, bookmarks and any Referer
(leak of a secret in a URL: OWASP Forgot Password CS, "URL tokens"), and the access log
filter (web/logs.py) drops it from the server's log line of the first request.

The cookie is encrypted and authenticated (Fernet: AES-CBC + HMAC-SHA256, with a timestamp
checked on read), HttpOnly (no script reads it), SameSite=Lax (it must survive the
top-level navigation that starts in a mail client, which Strict would not send), limited
to the reset page's path, and lives `MAX_AGE` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from starlette.requests import Request
from starlette.responses import Response

from relatch.auth.request import secure_cookies

COOKIE = "relatch_reset_code"
PATH = "/reset-password"
MAX_AGE = 300
MAX_CODE_CHARS = 64  # anything longer is not a code; not worth sealing


def _fernet(secrets: list[bytes]) -> MultiFernet:
    # A purpose-derived key: the signing secret itself is never used as an encryption key.
    keys = [
        Fernet(
            base64.urlsafe_b64encode(hmac.new(s, b"relatch:code-carry", hashlib.sha256).digest())
        )
        for s in secrets
    ]
    return MultiFernet(keys)


def _secrets(request: Request) -> list[bytes]:
    settings = request.app.state.services.settings
    return [settings.secret, *settings.fallback_secrets]


def stash(request: Request, response: Response, code: str) -> None:
    """Seal `code` into the cookie of `response` (the redirect that drops it from the URL)."""
    token = _fernet(_secrets(request)).encrypt(code[:MAX_CODE_CHARS].encode()).decode()
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def read(request: Request) -> str:
    """The carried code ('' if none, expired or forged); call `forget` on the response."""
    token = request.cookies.get(COOKIE)
    if not token:
        return ""
    try:
        raw = _fernet(_secrets(request)).decrypt(token.encode(), ttl=MAX_AGE)
    except InvalidToken:
        return ""
    return raw.decode(errors="replace")


def forget(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, samesite="lax", secure=secure_cookies(request)
    )
