"""The second line of defence against account pre-hijacking (issue 11).

Threat (Sudhodanan and Paverd, "Pre-hijacked Accounts", USENIX Security 2022): someone
signs up with an address that is not theirs before its owner does, and sets up what would
outlive the owner's recovery: a TOTP factor (the owner's sign-in then asks for a code they
never had), an API key, an OAuth grant, a session. The first line (services/activation.py)
refuses to make those credentials until the address is proven; accounts from before that
rule, or credentials got some other way, are what this module is for.

When a reset proves the address for the first time, the person holding the mailbox takes
the account over, and nothing made before that moment was provably theirs: every session
(the new password's generation bump, done by the caller), API key, TOTP factor with its
recovery codes, OAuth consent, token and code dies, in the reset's transaction. After a
later reset (the address was already proven) they stay: the owner made them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from relatch.storage import one_time
from relatch.storage.db import rowcount
from relatch.storage.models import User
from relatch.storage.models_auth import ApiKey, RecoveryCode, TotpFactor
from relatch.storage.models_oauth import OAuthConsent
from relatch.storage.oauth_repo import revoke_for_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forgotten:
    """What the first proof removed (counts only; for the log)."""

    api_keys: int
    totp: bool
    oauth_consents: int


def forget_unproven(s: Session, user: User, now: datetime) -> Forgotten:
    """Inside the transaction of the reset that first proved `user`'s address: remove every
    credential made before it (sessions die with the caller's generation bump)."""
    keys = rowcount(
        s.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    )
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    factor = rowcount(s.execute(delete(TotpFactor).where(TotpFactor.user_id == user.id)))
    consents = rowcount(s.execute(delete(OAuthConsent).where(OAuthConsent.user_id == user.id)))
    # Also done by the on_password_changed hook (relatch/app.py); repeated here so that this
    # rule does not depend on how the services were wired.
    revoke_for_user(s, user, now)
    one_time.ACTIVATION_CODES.revoke_live(s, user.id, now)  # the address is proven now
    forgotten = Forgotten(api_keys=keys, totp=factor > 0, oauth_consents=consents)
    if keys or factor or consents:
        log.info(
            "first proof of account %s's address removed %d API key(s), %s TOTP factor, "
            "%d OAuth consent(s)",
            user.id,
            keys,
            "its" if factor else "no",
            consents,
        )
    return forgotten
