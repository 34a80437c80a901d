"""The reset page's "If an account exists for <address>, a code is on its way" notice,
shown only with the address this browser itself submitted.

Threat (issue 8, text injection): `/reset-password?sent=1&email=<any text>` put any text a
link chose into this service's own page, a phishing aid on a trusted origin ("If an
account exists for ... call +1 555 ..."). Now the POST of the ask form (CSRF-checked: no
other site can make a browser send it) seals the submitted address into a short-lived
cookie on its redirect, and the page shows the notice only when that cookie opens. A
link cannot set a cookie, so the query string no longer decides what the notice says.

Sealed with AES-256-GCM under a purpose key (core/sealing.py; the current key seals,
fallback keys open) with the expiry inside the sealed text: the address is not readable
from the cookie, not forgeable, and not replayable after MAX_AGE. HttpOnly, SameSite=Lax,
Secure on https, limited to the reset page's path.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relatch.auth import cookies
from relatch.auth.request import services
from relatch.core import keyed, sealing

COOKIE = cookies.SENT_NOTICE.name
PATH = cookies.SENT_NOTICE.path
PURPOSE = keyed.SEAL_SENT_NOTICE
MAX_AGE = cookies.SENT_NOTICE_SECONDS  # step 2 is usually opened at once; a reload still works


def _now(request: Request) -> int:
    return int(services(request).clock().timestamp())


def remember(request: Request, response: Response, email: str) -> None:
    """Seal the address the person just submitted into a cookie of `response`."""
    svc = services(request)
    expires = _now(request) + MAX_AGE
    value = sealing.seal(svc.settings.secret, PURPOSE, "", f"{expires} {email}")
    cookies.set_cookie(request, response, cookies.SENT_NOTICE, value)


def read(request: Request) -> str | None:
    """The address this browser submitted, or None (no cookie, forged, or expired)."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 2048:
        return None
    opened = sealing.open_sealed(services(request).keys, PURPOSE, "", value)
    if opened is None:
        return None
    stamp, _, email = opened.partition(" ")
    if not stamp.isdigit() or int(stamp) < _now(request):
        return None
    return email
