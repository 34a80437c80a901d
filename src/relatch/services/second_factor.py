"""Whether a session's sign-in passed the account's second factor.

A session JWT says when it signed in (`auth_time`), not how. A sign-in asks for the TOTP
token when TOTP is on (services/accounts.finish_sign_in), so a session signed in after
TOTP was turned on passed it; one signed in before did not, even if it turned TOTP on
itself. Used where an operation needs the second factor behind the caller: staff acting on
another account (services/staff.py), a change of address (services/email_change.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from relatch.core import tokens
from relatch.services.context import Services
from relatch.storage.models_auth import TotpFactor


def enabled_at(svc: Services, account_id: int) -> datetime | None:
    """When the account's TOTP was turned on; None if it is off."""
    with svc.sessions() as s:
        return s.scalar(
            select(TotpFactor.enabled_at).where(
                TotpFactor.user_id == account_id, TotpFactor.sealed_secret.is_not(None)
            )
        )


def behind(svc: Services, account_id: int, session: tokens.SessionClaims) -> bool:
    """Whether TOTP is on and was on when this session signed in. A sign-in time is whole
    seconds: one in the very second TOTP was turned on may have come before it, so only a
    later one counts (at worst the person signs in once more)."""
    enabled = enabled_at(svc, account_id)
    return enabled is not None and session.auth_time > int(enabled.timestamp())


def passed_if_set(svc: Services, account_id: int, session: tokens.SessionClaims) -> bool:
    """Whether this session's sign-in passed the second factor, or the account has none."""
    enabled = enabled_at(svc, account_id)
    return enabled is None or session.auth_time > int(enabled.timestamp())
