"""Carrying the reset mail's link token to the set-password step, without leaving it in the URL.

Design: `GET /reset-password?token=..` does not render the token. It seals the token into a
short-lived cookie and redirects (303) to `?step=link`, which shows the form without a code
field (the token proves the mailbox; services/reset_link.py `reset_with_link`). The token never
enters the page: the cookie alone carries it to `POST /reset-password/new`, is sealed again
on each render of that form (so `MAX_AGE` counts from the last render) and deleted once the
password is set or the token fails. So the token is gone from the address bar, the history,
bookmarks, any Referer and the DOM (leak of a secret in a URL: OWASP Forgot Password CS,
"URL tokens"), and the access log filter (web/logs.py) drops it from the server's log line
of the first request.

The cookie is encrypted and authenticated (Fernet: AES-CBC + HMAC-SHA256, with a timestamp
checked on read), HttpOnly (no script reads it), SameSite=Lax (it must survive the
top-level navigation that starts in a mail client, which Strict would not send), limited
to the reset page's path, and lives `MAX_AGE` seconds.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from starlette.requests import Request
from starlette.responses import Response

from relatch.auth import cookies
from relatch.core import codes, keyed

COOKIE = cookies.CODE_CARRY.name  # "relatch_reset_code", kept from when it carried the code
PATH = cookies.CODE_CARRY.path
MAX_AGE = cookies.CODE_CARRY_SECONDS
MAX_CHARS = codes.MAX_LINK_TOKEN  # anything longer is not a token; not worth sealing


def _fernet(secrets: Iterable[bytes]) -> MultiFernet:
    # A purpose-derived key: the signing secret itself is never used as an encryption key.
    keys = [
        Fernet(base64.urlsafe_b64encode(keyed.derive_key(s, keyed.CODE_CARRY))) for s in secrets
    ]
    return MultiFernet(keys)


def _secrets(request: Request) -> keyed.KeyRing:
    keys: keyed.KeyRing = request.app.state.services.keys
    return keys


def stash(request: Request, response: Response, carried: str) -> None:
    """Seal `carried` into the cookie of `response` (the redirect that drops it from the URL,
    and each render of the form it is for)."""
    token = _fernet(_secrets(request)).encrypt(carried[:MAX_CHARS].encode()).decode()
    cookies.set_cookie(request, response, cookies.CODE_CARRY, token)


def read(request: Request) -> str:
    """The carried token ('' if none, expired or forged)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return ""
    try:
        raw = _fernet(_secrets(request)).decrypt(token.encode(), ttl=MAX_AGE)
    except InvalidToken:
        return ""
    return raw.decode(errors="replace")


def forget(request: Request, response: Response) -> None:
    cookies.clear(request, response, cookies.CODE_CARRY)
