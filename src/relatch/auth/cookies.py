"""Every cookie the app sets, decided in one table, and the one way to set or clear one.

Each attribute names the threat it answers:
- HttpOnly, against XSS: a script injected into a page cannot read the cookie. Every
  cookie here is HttpOnly: no page script reads any of them (the CSRF token a form needs
  is rendered into the form, not read from the cookie: web/csrf.py).
- SameSite, against CSRF: Strict where nothing arrives by a cross-site navigation (the
  CSRF nonce), Lax where the flow starts on another site or in a mail client (the reset
  link, the OAuth client's redirect to /authorize) and must still find its cookie on that
  top-level GET; Lax is never sent on a cross-site POST.
- Path, against leaking a cookie to pages that have no use for it: as narrow as the one
  page (or API prefix) that reads it; "/" only for what every page or API route reads.
- Max-Age, against a stolen or forgotten browser keeping a credential: as short as the
  flow it serves; None ends with the browser session.
- Secure, against theft over plain http: on an https request, and on every request when
  RELATCH_PUBLIC_URL is https (behind a TLS-terminating proxy the app sees http).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from relatch.settings import Settings

# Lifetimes that the sealed or signed values also carry inside (their own expiry check).
CODE_CARRY_SECONDS = 300  # the reset link's token, from one render of the form to its POST
SENT_NOTICE_SECONDS = 900  # step 2 of the reset page is usually opened at once
OAUTH_SIGNIN_SECONDS = 8 * 3600  # one working day of OAuth sign-ins without a password


@dataclass(frozen=True)
class Cookie:
    name: str
    path: str
    # Seconds (or from the settings); None: a browser-session cookie.
    max_age: int | Callable[[Settings], int] | None
    samesite: Literal["lax", "strict"]
    httponly: bool = True

    def lifetime(self, settings: Settings) -> int | None:
        return self.max_age(settings) if callable(self.max_age) else self.max_age


def _jwt_ttl(settings: Settings) -> int:
    return settings.jwt_ttl


def _known_client(settings: Settings) -> int:
    return settings.known_client_days * 86400


# The session JWT, set by the account sign-in page (web/account_signin.py) and renewed by a
# password change (http/routes/password.py). Every API route
# reads it, so "/"; Lax: a link from another site may open a page signed in, but no
# cross-site POST carries it (and state changes need JSON: auth/dependencies.py).
SESSION = Cookie("jwt", "/", _jwt_ttl, "lax")
# The CSRF nonce of the server-rendered forms (web/csrf.py): every page renders a form.
# Strict: no form is ever posted from another site.
CSRF = Cookie("relatch_csrf", "/", None, "strict")
# The reset link's token, sealed, carried from the link to the set-password form
# (web/code_carry.py). Lax: the link is opened from a mail client, a cross-site navigation.
CODE_CARRY = Cookie("relatch_reset_code", "/reset-password", CODE_CARRY_SECONDS, "lax")
# The address this browser asked a code for, sealed (web/sent_notice.py).
SENT_NOTICE = Cookie("relatch_reset_sent", "/reset-password", SENT_NOTICE_SECONDS, "lax")
# Who signed in on the authorize page (web/signin.py). Lax: the OAuth client's site
# redirects the browser to /v1/oauth/authorize.
OAUTH_SIGNIN = Cookie("relatch_oauth_signin", "/v1/oauth", OAUTH_SIGNIN_SECONDS, "lax")
# The device cookie of a known client (core/devices.py), read by sign-in on the API and
# on the pages, so "/"; it lives as long as a client stays known.
DEVICE = Cookie("relatch_device", "/", _known_client, "lax")

ALL = (SESSION, CSRF, CODE_CARRY, SENT_NOTICE, OAUTH_SIGNIN, DEVICE)


def secure(request: Request) -> bool:
    """Whether cookies set for this request get the Secure flag.

    Cookie theft over plain http (ASVS 5.0 3.3.1): behind a TLS-terminating proxy the app
    sees http (`relatch serve` does not trust proxy headers for the scheme), so the scheme
    of RELATCH_PUBLIC_URL, what browsers actually use, decides too.
    """
    public_url: str = request.app.state.settings.public_url
    return request.url.scheme == "https" or public_url.lower().startswith("https://")


def set_cookie(
    request: Request, response: Response, cookie: Cookie, value: str, *, max_age: int | None = None
) -> None:
    """Set `cookie` on `response` as the table says. `max_age` may shorten its life (a
    renewed session ends with the session it renews), never lengthen it."""
    lifetime = cookie.lifetime(request.app.state.settings)
    if max_age is not None:
        lifetime = max_age if lifetime is None else min(max_age, lifetime)
    response.set_cookie(
        cookie.name,
        value,
        max_age=lifetime,
        path=cookie.path,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
        secure=secure(request),
    )


def clear(request: Request, response: Response, cookie: Cookie) -> None:
    """Delete `cookie` (same name, path and attributes, or the browser keeps the old one)."""
    response.delete_cookie(
        cookie.name,
        path=cookie.path,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
        secure=secure(request),
    )
