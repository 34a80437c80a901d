"""An operator removes a person's TOTP, only after a wait (issue 14: a lost second factor).

`relatch user mfa-reset --email E` is how someone who lost their authenticator and their
recovery codes gets back in. It is also the cheapest attack on the second factor: a caller
who holds the password (phished, reused) asks the operator to remove "their" lost factor
(social engineering of the help desk; NIST SP 800-63B 6.1.2.3 asks for a notice to the
subscriber and a recovery that does not simply trust the caller). So the removal is never
immediate:

- `request` writes a durable row due RELATCH_MFA_RESET_WAIT_HOURS (default 72) later and,
  in the same transaction, mails the owner a notice with the "this was not me" link. A
  restart neither loses the request nor restarts its wait: the row holds the due time.
- The owner objects by following "this was not me" (services/not_me.confirm calls
  `cancel_pending`, which also signs every session out: whoever convinced the operator may
  already hold the password), or by signing in with their second factor (`settle` then
  `cancel_pending` from services/mfa.check_second_factor: a factor that still works is not
  lost, and a thief who holds it gains nothing from the removal, so cancelling on it costs
  the owner nothing), or by clearing TOTP themselves. The operator may cancel too.
- Once due, the factor goes at the first of: the workers' pass (relatch/workers.py, once a
  minute) or the owner's next sign-in (`settle`, called before the second factor is asked
  for: the owner is never refused at a factor that is already due to go, even with no
  worker running). The owner is mailed that the factor was removed, with "this was not me".

Only the factor that existed when the removal was asked is removed (its `enabled_at`): a
factor the owner set up later (after clearing the old one) is theirs and stays.
Two operators asking at once may write two rows: both are cancelled together, and the
second finds no factor left to remove ("stale"); nothing is removed twice or early.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from relatch.core import text
from relatch.core.errors import InvalidInput
from relatch.core.meta import RequestMeta
from relatch.services import audit, notices
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo
from relatch.storage.db import delete_in_batches, rowcount, transaction
from relatch.storage.models import User
from relatch.storage.models_auth import MfaReset, RecoveryCode, TotpFactor

log = logging.getLogger(__name__)

REASON_MAX = 256
OPERATOR_MAX = 64
# Requests carried out per call of `apply_due` (the worker's pass); the rest wait a pass.
BATCH = 100
# The audit row of a removal the worker (or a sign-in) carries out after the wait.
WAITED = RequestMeta(user_agent="relatch (mfa-reset after the wait)")

# How a pending removal ended (`MfaReset.outcome`).
REMOVED = "removed"
CANCELLED = "cancelled"  # by the operator
NOT_ME = "not_me"  # the owner's "this was not me"
SIGNED_IN = "signed_in"  # the owner signed in with the factor
CLEARED = "cleared"  # the owner cleared TOTP
STALE = "stale"  # no factor left to remove, or another one
PENDING = "pending"  # (`settle`: still waiting)


@dataclass(frozen=True)
class Pending:
    user_id: int
    email: str
    due_at: datetime


def operator_meta(operator: str, reason: str | None) -> RequestMeta:
    """The audit row's "who asked": the operator's OS user and reason in the user agent
    column (`relatch audit` prints it), as one printable line."""
    said = f"; reason {reason}" if reason else ""
    return RequestMeta(user_agent=text.inline(f"relatch-cli; operator {operator}{said}")[:256])


def _check_reason(reason: str | None) -> str | None:
    why = (reason or "").strip()
    if not why:
        return None
    if len(why) > REASON_MAX or not text.is_line(why):
        raise InvalidInput(f"the reason must be one line of at most {REASON_MAX} characters")
    return why


def _account(s: Session, email: str) -> User:
    user = accounts_repo.by_email(s, email.strip())
    if user is None:
        raise InvalidInput(f"no account with the address {email.strip()}")
    return user


def _pending(s: Session, user_id: int) -> MfaReset | None:
    return s.scalars(
        select(MfaReset)
        .where(MfaReset.user_id == user_id, MfaReset.ended_at.is_(None))
        .order_by(MfaReset.due_at)
    ).first()


def due_of(svc: Services, user_id: int) -> datetime | None:
    """When the pending removal of this account's factor is due, if one is pending."""
    with svc.sessions() as s:
        row = _pending(s, user_id)
        return row.due_at if row is not None else None


def request(
    svc: Services, email: str, operator: str, reason: str | None, meta: RequestMeta
) -> Pending:
    """Ask for the removal of the account's TOTP after the wait; mail the owner now."""
    why = _check_reason(reason)
    who = text.inline(operator)[:OPERATOR_MAX] or "unknown"
    with audit.trail(svc, audit.MFA_RESET_REQUEST, meta) as t:
        now = svc.clock()
        due = now + timedelta(hours=svc.settings.mfa_reset_wait_hours)
        with transaction(svc.sessions) as s:
            user = _account(s, email)
            t.subject_id = user.id
            if user.suspended_at is not None:
                # As for an operator's reset code: a suspended account gets no mail that
                # invites action (its not-me links died with the suspension).
                raise InvalidInput("the account is suspended: lift the suspension first")
            factor = s.get(TotpFactor, user.id)
            if factor is None or factor.sealed_secret is None:
                raise InvalidInput("the account has no second factor to remove")
            already = _pending(s, user.id)
            if already is not None:
                raise InvalidInput(
                    "a removal is already pending, due "
                    f"{already.due_at:%Y-%m-%d %H:%M} UTC (--cancel cancels it)"
                )
            s.add(
                MfaReset(
                    user_id=user.id,
                    requested_at=now,
                    due_at=due,
                    requested_by=who,
                    reason=why,
                    factor_enabled_at=factor.enabled_at,
                )
            )
            # The owner hears of it at once, with the link that cancels it; the mail does
            # not name the operator (an internal user name is no business of a mailbox).
            notices.send(
                svc,
                s,
                user,
                "mfa_reset_requested",
                now,
                {
                    "due": due.strftime("%Y-%m-%d %H:%M UTC"),
                    "wait_hours": svc.settings.mfa_reset_wait_hours,
                },
            )
            t.write(s)
            pending = Pending(user.id, user.email, due)
    log.info("TOTP removal asked for account %s, due %s", pending.user_id, due.isoformat())
    return pending


def cancel(svc: Services, email: str, meta: RequestMeta) -> Pending:
    """The operator takes the request back (`relatch user mfa-reset --cancel`)."""
    with audit.trail(svc, audit.MFA_RESET_CANCEL, meta) as t, transaction(svc.sessions) as s:
        user = _account(s, email)
        t.subject_id = user.id
        row = _pending(s, user.id)
        if row is None:
            raise InvalidInput("no removal of the second factor is pending for this account")
        pending = Pending(user.id, user.email, row.due_at)
        cancel_pending(svc, s, user, svc.clock(), CANCELLED)
        t.write(s)
    return pending


def cancel_pending(
    svc: Services, s: Session, user: User, now: datetime, outcome: str, *, notify: bool = True
) -> int:
    """End every pending removal of this account's factor, in the caller's transaction;
    with `notify`, mail the owner that it will not happen. Returns how many ended."""
    ended = rowcount(
        s.execute(
            update(MfaReset)
            .where(MfaReset.user_id == user.id, MfaReset.ended_at.is_(None))
            .values(ended_at=now, outcome=outcome)
        )
    )
    if ended and notify:
        notices.send(svc, s, user, "mfa_reset_cancelled", now, {"outcome": outcome}, not_me=False)
    return ended


def apply_due(svc: Services, user_id: int | None = None) -> int:
    """Carry out the removals whose wait is over (all, or this account's); returns how
    many factors were removed. Each in its own transaction, claimed by one conditional
    UPDATE: two workers (or a worker and a sign-in) never remove one twice."""
    now = svc.clock()
    query = select(MfaReset.id).where(MfaReset.ended_at.is_(None), MfaReset.due_at <= now)
    if user_id is not None:
        query = query.where(MfaReset.user_id == user_id)
    with svc.sessions() as s:
        ids = list(s.scalars(query.order_by(MfaReset.due_at).limit(BATCH)))
    return sum(_remove(svc, request_id, now) for request_id in ids)


def _remove(svc: Services, request_id: int, now: datetime) -> int:
    with transaction(svc.sessions) as s:
        # Race: the wait, and "not ended", checked again in the UPDATE that ends it; a
        # cancellation committed meanwhile leaves nothing to claim (row count 0).
        claimed = rowcount(
            s.execute(
                update(MfaReset)
                .where(
                    MfaReset.id == request_id,
                    MfaReset.ended_at.is_(None),
                    MfaReset.due_at <= now,
                )
                .values(ended_at=now, outcome=REMOVED)
            )
        )
        row = s.get(MfaReset, request_id)
        if claimed != 1 or row is None:
            return 0
        owner = row.user_id
        factor = s.get(TotpFactor, row.user_id)
        user = accounts_repo.by_id(s, row.user_id)
        if (
            user is None
            or factor is None
            or factor.sealed_secret is None
            or factor.enabled_at != row.factor_enabled_at
        ):
            # The factor asked about is gone (cleared, or replaced by one the owner set up
            # since): nothing of theirs is removed.
            row.outcome = STALE
            return 0
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        s.execute(delete(TotpFactor).where(TotpFactor.user_id == user.id))
        audit.add(s, svc, audit.MFA_RESET, audit.OK, WAITED, subject_id=user.id, at=now)
        notices.send(svc, s, user, "mfa_disabled", now, {"by_operator": True})
    log.info("TOTP of account %s removed after the operator's wait", owner)
    return 1


def settle(svc: Services, user_id: int) -> str | None:
    """At a sign-in of an account with TOTP, before the factor is asked for: a removal now
    due is carried out. Returns REMOVED if it was, PENDING if one is still waiting, else
    None. One indexed read when none is pending."""
    due = due_of(svc, user_id)
    if due is None:
        return None
    if due > svc.clock():
        return PENDING
    if apply_due(svc, user_id):
        return REMOVED
    return PENDING if due_of(svc, user_id) is not None else None


def prune_ended(svc: Services) -> int:
    """Delete requests that ended more than RELATCH_AUDIT_RETENTION_DAYS ago (the workers'
    retention pass): they hold the operator's name and reason, kept as long as the audit
    trail keeps the rows of the same events. Pending requests are never matched."""
    cutoff = svc.clock() - timedelta(days=svc.settings.audit_retention_days)
    return delete_in_batches(
        svc.sessions, MfaReset, MfaReset.ended_at.is_not(None) & (MfaReset.ended_at < cutoff)
    )
