"""The sign-in cookie of the authorize page: who signed in, when, and with which
credential generation, under an HMAC. No server-side state.

- Forgery: the value is HMAC-SHA256 under a purpose key derived from the secret key,
  checked in constant time with the current and every fallback key.
- Revocation: it carries the account's credential generation; a reset or password
  change bumps it, and every older cookie stops signing anyone in.
- Theft by script / CSRF: HttpOnly, and SameSite=Lax (sent on the top-level navigation
  from the client's site to /authorize, not on cross-site POSTs); Secure over https.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from relatch.auth import cookies
from relatch.core import keyed
from relatch.services import accounts
from relatch.services.account import Account
from relatch.services.context import Services

COOKIE = cookies.OAUTH_SIGNIN.name
PATH = cookies.OAUTH_SIGNIN.path
TTL_SECONDS = cookies.OAUTH_SIGNIN_SECONDS


@dataclass(frozen=True)
class SignedIn:
    user: Account
    auth_time: int


def issue(svc: Services, request: Request, user: Account, response: Response) -> int:
    now = int(svc.clock().timestamp())
    payload = f"{user.id}.{user.credential_generation}.{now}.{now + TTL_SECONDS}"
    value = f"{payload}.{keyed.digest(svc.keys, keyed.OAUTH_SIGNIN, payload)}"
    cookies.set_cookie(request, response, cookies.OAUTH_SIGNIN, value)
    return now


def current(svc: Services, request: Request) -> SignedIn | None:
    """The signed-in account, or None (no cookie, forged, expired, or revoked)."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 200:
        return None
    payload, _, mac = value.rpartition(".")
    if not keyed.matches(svc.keys, keyed.OAUTH_SIGNIN, payload, stored=mac):
        return None
    try:
        user_id, generation, auth_time, expires = (int(p) for p in payload.split("."))
    except ValueError:
        return None
    if expires <= int(svc.clock().timestamp()):
        return None
    user = accounts.by_id(svc, user_id)
    if user is None or user.credential_generation != generation:
        return None
    return SignedIn(user, auth_time)
