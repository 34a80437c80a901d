"""Who may act on another account by id (`/v1/api/users/{userId}`), and what staff see.

On one's own id the operations are the current-user ones (http/routes/users_by_id.py);
this module decides the rest, in this order, before the account is looked up:

1. Not staff: UserNotFound, the answer for an id that does not exist. Enumeration: no
   lookup is made, so existing and unknown ids cost the same and answer the same.
2. Staff, but not through a session JWT signed in within RELATCH_REAUTH_SECONDS:
   StaffReauthRequired (401). Session abuse (ASVS 5.0 7.5.1, GitHub's sudo mode): an API
   key or an OAuth bearer token passes no sign-in and no second factor, and a JWT lifted
   from a staff member's browser must not reach every account for the rest of its week.
3. Staff without TOTP, or whose session was signed in before TOTP was on (so no second
   factor stood behind it): StaffMfaRequired. A staff password alone, phished or reused,
   must not reach other people's accounts.
4. Then the account: UserNotFound when there is none.

Every refusal and every read is audited (audit.STAFF_ACCESS) with the caller as actor and
the id asked for as subject; the changes themselves are audited by their use cases
(profile, deletion, activation) the same way.
"""

from __future__ import annotations

from relatch.core import tokens
from relatch.core.errors import (
    NotYourPassword,
    StaffMfaRequired,
    StaffReauthRequired,
    UserNotFound,
)
from relatch.core.meta import RequestMeta
from relatch.services import audit, second_factor
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo

# Account ids are positive BIGINTs: anything else names no account (and a larger number
# would be an out-of-range error in PostgreSQL, not an answer).
MAX_ID = 2**63 - 1


def authorize(
    svc: Services,
    caller: Account,
    session: tokens.SessionClaims | None,
    user_id: int,
    meta: RequestMeta,
    *,
    read: bool = False,
) -> Account:
    """The account `user_id` names, for a staff `caller` allowed to act on it (module
    docstring: the order of the checks). `read`: audit the read itself (getUser); changes
    are audited by their own use cases."""
    subject = user_id if 0 < user_id <= MAX_ID else None
    with audit.trail(svc, audit.STAFF_ACCESS, meta, account_id=caller.id, subject_id=subject) as t:
        if not caller.is_staff:
            raise UserNotFound()
        now = int(svc.clock().timestamp())
        if session is None or not tokens.signed_in_within(
            session, now, svc.settings.reauth_seconds
        ):
            raise StaffReauthRequired()
        if not second_factor.behind(svc, caller.id, session):
            raise StaffMfaRequired()
        target = _account(svc, subject)
        if target is None:
            raise UserNotFound()
        if not read:
            t.written = True  # the use case that follows writes the row of the change
        return target


def refuse_password(svc: Services, caller: Account, user_id: int, meta: RequestMeta) -> None:
    """changePasswordUser on another account's id: always refused, looked up never.

    Nobody, staff included, sets another person's password (ASVS 5.0 6.4.6): staff hear
    so (NotYourPassword; an operator sends a reset code), anyone else gets the answer for
    an id that does not exist (UserNotFound).
    """
    subject = user_id if 0 < user_id <= MAX_ID else None
    with audit.trail(svc, audit.STAFF_ACCESS, meta, account_id=caller.id, subject_id=subject):
        raise NotYourPassword() if caller.is_staff else UserNotFound()


def _account(svc: Services, account_id: int | None) -> Account | None:
    if account_id is None:
        return None
    with svc.sessions() as s:
        user = accounts_repo.by_id(s, account_id)
        return Account.of(user) if user is not None else None
