"""The sign-in form of the pages: one logic for the two places a person signs in, the
authorize page (web/authorize_page.py, which then sets the OAuth sign-in cookie of
web/signin.py) and the account sign-in page (web/account_signin.py, which then sets the
session cookie `jwt`). Its fields: templates/_signin_fields.html.

Fields (the contract's "Web pages"): `username`, `password`, and `totpToken` once the
password matched on an account with a second factor.

- Enumeration: an unknown login and a wrong password get one message after the same work
  (services/accounts.check_password verifies a dummy hash for an unknown login). The
  second factor and a suspension are named only after the password matched.
- Brute force and credential stuffing: the one sign-in service of the API, so the same
  failure limits; a spent budget is a 429 with Retry-After, the right password included.
  A wrong second-factor code is a failed attempt too (TotpRejected is a LoginFailed).
- Lockout (OWASP "device cookies"): a browser without a valid device cookie gets a new
  device id; after the whole sign-in (second factor included) the browser is a known
  client of the account with a budget of its own, and the page sets its `relatch_device`
  cookie (`remember_device`).
- Text injection: every message is one of this module's or of the reset page's, never
  text of the request or of a library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from relatch.auth.request import request_meta, services, set_device_cookie
from relatch.core.errors import (
    AccountSuspended,
    LoginFailed,
    RateLimited,
    TotpRejected,
    TotpRequired,
)
from relatch.core.meta import RequestMeta
from relatch.services import accounts
from relatch.services.account import Account
from relatch.web import rendering

USERNAME = "username"
PASSWORD = "password"  # noqa: S105 (a field name, not a password)
TOTP = "totpToken"
FIELDS = (USERNAME, PASSWORD, TOTP)


def N_(message: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    return message


# One message for an unknown login and a wrong password (enumeration): LoginFailed's text.
WRONG = N_("Invalid username or password")
TOTP_NEEDED = N_(
    "This account has a second factor: enter your password again with the code from "
    "your authenticator app, or one of your recovery codes."
)
TOTP_WRONG = N_(
    "That code is wrong or already used. Enter your password again with the current code "
    "from your authenticator app, or an unused recovery code."
)
SUSPENDED = N_("This account is suspended. Contact the people who run this service.")


@dataclass(frozen=True)
class Outcome:
    """What a sign-in attempt gave: the account, or the message and the form's next shape."""

    meta: RequestMeta  # the caller, with the device id to remember after a success
    user: Account | None = None
    error: str | None = None  # a message id of this module (translate with `message`)
    need_totp: bool = False
    retry_after: int | None = None

    @property
    def status(self) -> int:
        # A refused sign-in is a page to fill in again (200), as on the authorize page;
        # a spent budget is 429, with Retry-After.
        return 429 if self.retry_after is not None else 200

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def message(self, gettext: Callable[[str], str]) -> str | None:
        """The error in the page's language (`gettext`)."""
        if self.retry_after is not None:
            return rendering.too_many(gettext, self.retry_after)
        return gettext(self.error) if self.error else None


async def attempt(request: Request, values: Mapping[str, str]) -> Outcome:
    """Sign in with the posted `values` (FIELDS): the password, then the second factor."""
    # Lockout: a browser that signs in becomes a known device of the account.
    meta = request_meta(request, new_device=True)
    token = values.get(TOTP) or None
    try:
        signed = await accounts.sign_in(
            services(request), values.get(USERNAME, ""), values.get(PASSWORD, ""), token, meta
        )
    except TotpRequired:
        # Only after the password matched: tells nothing to whoever lacks it.
        return Outcome(meta, error=TOTP_NEEDED, need_totp=True)
    except RateLimited as exc:
        return Outcome(meta, need_totp=token is not None, retry_after=exc.retry_after)
    except TotpRejected:
        return Outcome(meta, error=TOTP_WRONG, need_totp=True)
    except AccountSuspended:
        return Outcome(meta, error=SUSPENDED)
    except LoginFailed:
        # Enumeration: every other refusal (unknown login, wrong password) reads alike.
        return Outcome(meta, error=WRONG, need_totp=token is not None)
    return Outcome(meta, user=signed.account)


def remember_device(request: Request, response: Response, outcome: Outcome) -> None:
    """After a success: the device cookie of the browser that signed in."""
    set_device_cookie(request, response, outcome.meta)
