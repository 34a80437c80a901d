"""CSRF protection for the server-rendered forms: the signed double-submit cookie pattern.

CSRF (OWASP CSRF Prevention Cheat Sheet): a random nonce lives in a SameSite=Strict,
HttpOnly cookie; each form carries HMAC(secret, nonce) in a hidden field. Another site
can make the browser send the cookie but can neither read it nor forge the HMAC.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from relatch.auth import cookies
from relatch.core import keyed
from relatch.core.errors import RelatchError

COOKIE = cookies.CSRF.name
FIELD = "csrf_token"


class CSRFRejected(RelatchError):
    public_message = "This form has expired. Reload the page and try again."


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
    return keyed.digest(svc.keys, keyed.CSRF, _nonce(request))


def set_cookie(request: Request, response: Response) -> None:
    """Call on every response that renders a form: sets the nonce cookie if it is new."""
    fresh = getattr(request.state, "csrf_nonce", None)
    if fresh is not None:
        cookies.set_cookie(request, response, cookies.CSRF, fresh)


def renew(request: Request, response: Response) -> None:
    """A new nonce for this browser once it has signed in (`response` sets it).

    CSRF across sign-in (OWASP CSRF Prevention Cheat Sheet, login CSRF and pre-session
    tokens): a nonce someone else chose or read before the sign-in (a cookie tossed from a
    sibling host, or set over plain http) must not keep signing the forms of the
    signed-in pages; forms rendered before the sign-in then ask to be sent again.
    """
    cookies.set_cookie(request, response, cookies.CSRF, secrets.token_urlsafe(32))


def verify_csrf(request: Request, submitted: str | None) -> None:
    """CSRFRejected unless `submitted` is the signature of this browser's nonce."""
    nonce = request.cookies.get(COOKIE)
    if not nonce or not submitted:
        raise CSRFRejected()
    svc = request.app.state.services
    # The submitted field is whatever the client typed: keyed.matches compares bytes (a str
    # with non-ASCII characters made compare_digest raise, a 500 found by fuzzing).
    if not keyed.matches(svc.keys, keyed.CSRF, nonce, stored=submitted):
        raise CSRFRejected()
