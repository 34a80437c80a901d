"""CSRF protection for the server-rendered forms: the signed double-submit cookie pattern.

CSRF (OWASP CSRF Prevention Cheat Sheet): a random nonce lives in a SameSite=Strict,
HttpOnly cookie; each form carries HMAC(secret, nonce) in a hidden field. Another site
can make the browser send the cookie but can neither read it nor forge the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from relatch.auth.request import secure_cookies
from relatch.core.errors import RelatchError

COOKIE = "relatch_csrf"
FIELD = "csrf_token"


class CSRFRejected(RelatchError):
    public_message = "This form has expired. Reload the page and try again."


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"relatch:csrf", hashlib.sha256).digest()


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(_key(secret), nonce.encode(), hashlib.sha256).hexdigest()


def _nonce(request: Request) -> str:
    """The request's nonce, or a new one remembered on request.state until the response."""
    existing = request.cookies.get(COOKIE)
    if existing and 16 <= len(existing) <= 128:
        return existing
    fresh: str | None = getattr(request.state, "csrf_nonce", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.csrf_nonce = fresh
    return fresh


def csrf_token(request: Request) -> str:
    """The hidden-field value for a form on this page."""
    svc = request.app.state.services
    return _sign(svc.settings.secret, _nonce(request))


def set_cookie(request: Request, response: Response) -> None:
    """Call on every response that renders a form: sets the nonce cookie if it is new."""
    fresh = getattr(request.state, "csrf_nonce", None)
    if fresh is not None:
        secure = secure_cookies(request)
        response.set_cookie(
            COOKIE, fresh, httponly=True, samesite="strict", secure=secure, path="/"
        )


def verify_csrf(request: Request, submitted: str | None) -> None:
    """CSRFRejected unless `submitted` is the signature of this browser's nonce."""
    nonce = request.cookies.get(COOKIE)
    if not nonce or not submitted:
        raise CSRFRejected()
    svc = request.app.state.services
    keys = [svc.settings.secret, *svc.settings.fallback_secrets]
    # As bytes: compare_digest raises TypeError for a str with non-ASCII characters, and the
    # submitted field is whatever the client typed (a 500 before, found by fuzzing).
    given = submitted.encode("utf-8", "surrogatepass")
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(_sign(key, nonce).encode(), given)
    if not ok:
        raise CSRFRejected()
