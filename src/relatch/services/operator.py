"""What an operator does to an account from the command line (`relatch user ...`): make
it staff or not, send it a reset code, suspend it and lift the suspension.

The operator is no account: audit rows of these name no actor (`account_id` empty, the
CLI's user agent) and the account acted on as subject.

Suspension (issue 11): a suspended account cannot sign in (its right password and second
factor get "suspended", nothing less gets more than the usual refusal: enumeration), and
no credential of it works (401): the suspension bumps the credential generation, so every
session JWT, OAuth token and code and sign-in cookie dies for good, and each scheme also
refuses a suspended account (API keys, kept for when the suspension is lifted, included).
Reset codes, activation codes and not-me links alive at that moment die, and the reset
worker mails it no new code; a reset request still answers as for any address.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from relatch.core import text
from relatch.core.errors import InvalidInput
from relatch.core.meta import RequestMeta
from relatch.services import audit, reset_requests
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time
from relatch.storage.db import rowcount, transaction
from relatch.storage.models import User
from relatch.storage.oauth_repo import revoke_for_user

log = logging.getLogger(__name__)

REASON_MAX = 256


def _account(svc: Services, email: str) -> Account:
    with svc.sessions() as s:
        user = accounts_repo.by_email(s, email.strip())
        if user is None:
            raise InvalidInput(f"no account with the address {email.strip()}")
        return Account.of(user)


def set_staff(svc: Services, email: str, staff: bool, meta: RequestMeta) -> Account:
    """Make the account staff (`staffInfo.isStaff`), or stop it being staff."""
    user = _account(svc, email)
    event = audit.STAFF_GRANT if staff else audit.STAFF_REVOKE
    with audit.trail(svc, event, meta, subject_id=user.id) as t, transaction(svc.sessions) as s:
        s.execute(update(User).where(User.id == user.id).values(is_staff=staff))
        t.write(s)
    log.info("account %s %s staff", user.id, "made" if staff else "no longer")
    return user


def send_reset(svc: Services, email: str, meta: RequestMeta) -> Account:
    """Mail the account a reset code (an operator never chooses a password: ASVS 5.0
    6.4.6). Refused for a suspended account, which gets no reset code."""
    user = _account(svc, email)
    with (
        audit.trail(svc, audit.OPERATOR_RESET, meta, subject_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        row = accounts_repo.by_id(s, user.id)
        if row is None:
            raise InvalidInput(f"no account with the address {email.strip()}")
        if row.suspended_at is not None:
            raise InvalidInput("the account is suspended: lift the suspension first")
        reset_requests.issue_code(svc, s, row)  # kills older codes, mails a fresh one
        t.write(s)
    return user


def suspend(svc: Services, email: str, reason: str, meta: RequestMeta) -> Account:
    """Suspend the account (module docstring: what that ends)."""
    why = reason.strip()
    if not why or len(why) > REASON_MAX or not text.is_line(why):
        raise InvalidInput(f"give a reason: one line of 1 to {REASON_MAX} characters")
    user = _account(svc, email)
    with audit.trail(svc, audit.SUSPEND, meta, subject_id=user.id) as t:
        now = svc.clock()
        with transaction(svc.sessions) as s:
            row = accounts_repo.by_id(s, user.id)
            if row is None:
                raise InvalidInput(f"no account with the address {email.strip()}")
            s.execute(
                update(User)
                .where(User.id == user.id)
                .values(
                    suspended_at=now,
                    suspension_reason=why,
                    # Every session JWT, OAuth token and sign-in cookie dies for good.
                    credential_generation=User.credential_generation + 1,
                )
            )
            revoke_for_user(s, row, now)
            # (An address change's undo link is kept: it is the old address owner's way
            # back, and its reservation of that address, whatever the operator decides.)
            for store in (
                one_time.RESET_CODES,
                one_time.ACTIVATION_CODES,
                one_time.NOT_ME_LINKS,
                one_time.EMAIL_CHANGES,
            ):
                store.revoke_unused(s, user.id, now)
            t.write(s)
    log.info("account %s suspended", user.id)
    return user


def unsuspend(svc: Services, email: str, meta: RequestMeta) -> Account:
    """Lift the suspension: the password and API keys work again; sessions and OAuth
    tokens from before stay dead (the person signs in again)."""
    user = _account(svc, email)
    with (
        audit.trail(svc, audit.UNSUSPEND, meta, subject_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        done = s.execute(
            update(User)
            .where(User.id == user.id, User.suspended_at.is_not(None))
            .values(suspended_at=None, suspension_reason=None)
        )
        if rowcount(done) != 1:
            raise InvalidInput("the account is not suspended")
        t.write(s)
    log.info("account %s no longer suspended", user.id)
    return user
