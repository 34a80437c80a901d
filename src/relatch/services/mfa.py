"""The TOTP second factor: create a key, prove a device holds it, clear it, check it at login.

Stored state (storage/models_auth.py): the key sealed with AES-GCM (it must be read back to
verify tokens, so it cannot be a digest; see core/sealing.py), the newest accepted TOTP step
(replay), and 10 single-use recovery codes kept only as keyed digests.
A password reset or change leaves all of this in place: losing the password must not
also remove the second factor (else a stolen mailbox would bypass it).

Notices (issue 14, services/notices.py, each with "this was not me"): the factor switched
on or off, new recovery codes, and 2 or fewer recovery codes left. A lost factor: new
recovery codes here (`regenerate_codes`), an operator's delayed removal in
services/mfa_reset.py.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relatch.core import codes, identity, keyed, sealing, tokens, totp
from relatch.core.errors import FactorReauthRequired, MfaState, TotpRejected, TotpRequired
from relatch.core.meta import RequestMeta
from relatch.services import audit, known_clients, mfa_reset, notices, second_factor
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time
from relatch.storage.db import rowcount, transaction
from relatch.storage.models_auth import RecoveryCode, TotpFactor

log = logging.getLogger(__name__)

SEAL_PURPOSE = keyed.SEAL_TOTP_SECRET
RECOVERY_PURPOSE = keyed.RECOVERY_CODE
RECOVERY_CODES = 10
# The "recovery codes running out" notice goes when this many or fewer are left.
LOW_CODES = 2


def _context(user_id: int) -> str:
    # Bound to the account: a sealed key copied to another row does not open there.
    return f"totp:{user_id}"


@dataclass(frozen=True)
class NewMfaKey:
    key: str
    url: str


# Configured: a factor whose secret is sealed (a pending key, not yet confirmed, is not).
_CONFIGURED = select(TotpFactor.user_id).where(
    TotpFactor.user_id == bindparam("b_user_id"), TotpFactor.sealed_secret.is_not(None)
)


def is_configured(svc: Services, user_id: int) -> bool:
    with svc.sessions() as s:
        return configured_in(s, user_id)


def configured_in(s: Session, user_id: int) -> bool:
    """`is_configured`, read in the caller's session or transaction."""
    # Prebuilt, as Core: every sign-in asks (issue 12).
    return s.connection().execute(_CONFIGURED, {"b_user_id": user_id}).first() is not None


def create_key(svc: Services, user: Account, meta: RequestMeta) -> NewMfaKey:
    """A new pending key (replacing an older pending one); only without MFA configured."""
    secret = totp.new_secret()
    sealed = sealing.seal(svc.settings.secret, SEAL_PURPOSE, _context(user.id), secret)
    now = svc.clock()
    for _ in range(2):  # a parallel first create-key may insert the row first: retry as update
        try:
            with transaction(svc.sessions) as s:
                row = s.get(TotpFactor, user.id)
                if row is not None and row.sealed_secret is not None:
                    # Takeover: a stolen session must not silently replace the factor.
                    raise MfaState("MFA is already configured; clear it first")
                if row is None:
                    s.add(
                        TotpFactor(
                            user_id=user.id,
                            pending_secret=sealed,
                            pending_created_at=now,
                            last_step=0,
                        )
                    )
                else:
                    row.pending_secret = sealed
                    row.pending_created_at = now
            break
        except IntegrityError:
            continue
    return NewMfaKey(key=secret, url=totp.provisioning_url(secret, user.email))


def _open(svc: Services, user_id: int, sealed: str) -> str:
    secret = sealing.open_sealed(svc.keys, SEAL_PURPOSE, _context(user_id), sealed)
    if secret is None:
        # Only after a lost secret key: fail closed, never skip the factor.
        log.error("TOTP key of account %s cannot be opened with any accepted key", user_id)
        raise TotpRejected()
    return secret


def _consume_step(s: Session, user_id: int, step: int, *, enabled: bool) -> bool:
    """Replay: one conditional UPDATE moves last_step forward; a parallel use of the same
    token (or an older one) finds the row already moved and gets row count 0."""
    flag = TotpFactor.sealed_secret.is_not(None) if enabled else TotpFactor.sealed_secret.is_(None)
    moved = rowcount(
        s.execute(
            update(TotpFactor)
            .where(TotpFactor.user_id == user_id, TotpFactor.last_step < step, flag)
            .values(last_step=step)
        )
    )
    return moved == 1


def set_key(svc: Services, user: Account, key: str, token: str, meta: RequestMeta) -> list[str]:
    """Enable MFA with the pending key once a token proves a device holds it.

    Returns the recovery codes, shown this once; only their digests are stored.
    Audited (issue 8) with the account as actor: a wrong token or a refusal too.
    """
    with audit.trail(svc, audit.TOTP_SET, meta, account_id=user.id) as t:
        with svc.sessions() as s:
            row = s.get(TotpFactor, user.id)
        if row is not None and row.sealed_secret is not None:
            raise MfaState("MFA is already configured; clear it first")
        if row is None or row.pending_secret is None:
            raise MfaState("No pending MFA key: create one with create-key first")
        pending = _open(svc, user.id, row.pending_secret)
        given = key.strip().replace(" ", "").upper()
        if not hmac.compare_digest(given.encode(), pending.encode()):
            raise MfaState("This is not the key created by create-key")
        match = totp.verify(pending, token, int(svc.clock().timestamp()), row.last_step)
        if match is None:
            raise TotpRejected()
        recovery = [codes.generate() for _ in range(RECOVERY_CODES)]
        now = svc.clock()
        with transaction(svc.sessions) as s:
            if not _consume_step(s, user.id, match.step, enabled=False):
                raise TotpRejected()
            enabled = rowcount(
                s.execute(
                    update(TotpFactor)
                    .where(
                        TotpFactor.user_id == user.id,
                        TotpFactor.sealed_secret.is_(None),
                        TotpFactor.pending_secret == row.pending_secret,
                    )
                    .values(
                        sealed_secret=row.pending_secret,
                        enabled_at=now,
                        pending_secret=None,
                        pending_created_at=None,
                    )
                )
            )
            if enabled != 1:
                raise MfaState("The pending MFA key changed; create a new one")
            _store_codes(svc, s, user.id, recovery, now)
            _notify(svc, s, user.id, "mfa_enabled", now)
            t.write(s)  # in the transaction that enables the factor
        log.info("TOTP enabled for account %s", user.id)
        return [codes.display(c) for c in recovery]


def _store_codes(
    svc: Services, s: Session, user_id: int, recovery: list[str], now: datetime
) -> None:
    """Replace every recovery code of the account (used or not) by these, as digests."""
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    for code in recovery:
        s.add(
            RecoveryCode(
                user_id=user_id,
                digest=keyed.digest(svc.keys, RECOVERY_PURPOSE, user_id, code),
                created_at=now,
            )
        )


def _notify(
    svc: Services, s: Session, user_id: int, template: str, now: datetime, **context: object
) -> None:
    """A notice to the account's owner (with "this was not me"), in the caller's transaction."""
    row = accounts_repo.by_id(s, user_id)
    if row is not None:
        notices.send(svc, s, row, template, now, context)


def _codes_left(s: Session, user_id: int) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def _use_totp(svc: Services, user_id: int, token: str) -> bool:
    with svc.sessions() as s:
        row = s.get(TotpFactor, user_id)
    if row is None or row.sealed_secret is None:
        return False
    secret = _open(svc, user_id, row.sealed_secret)
    match = totp.verify(secret, token, int(svc.clock().timestamp()), row.last_step)
    if match is None:
        return False
    with transaction(svc.sessions) as s:
        return _consume_step(s, user_id, match.step, enabled=True)


def _use_recovery_code(svc: Services, user_id: int, entered: str, *, warn: bool) -> bool:
    """Single use: match in constant time, then one conditional UPDATE with row count 1.

    `warn` (a sign-in, not a clear that deletes every code anyway): when 2 or fewer codes
    are left, the owner is mailed once for this set of codes. Once, not on every later
    use: the notice is a prompt to make new codes, and repeating it would train the owner
    to ignore our security mail. `codes_warned_at` is set by one conditional UPDATE (two
    parallel uses of the last codes send one mail) and cleared when new codes are made.
    "2 or fewer", not "exactly 2": two parallel uses that each count before the other
    commits may both see 3 left; the warning then goes with the next use, never not at all.
    With "this was not me": a recovery code used by someone else means the account is
    taken, second factor included."""
    canonical = codes.canonical(entered)
    if canonical is None:
        return False
    now = svc.clock()
    with svc.sessions() as s:
        rows = one_time.RECOVERY_CODES.live_candidates(s, user_id, now)
    matched: int | None = None
    for code_id, stored in rows:
        # Timing: every unused code compared, no early exit.
        if keyed.matches(svc.keys, RECOVERY_PURPOSE, user_id, canonical, stored=stored):
            matched = code_id
    if matched is None:
        return False
    with transaction(svc.sessions) as s:
        # Replay: one conditional UPDATE; a parallel use of the same code loses.
        used = one_time.RECOVERY_CODES.consume(s, matched, now)
        if used and warn:
            left = _codes_left(s, user_id)
            if left <= LOW_CODES and _first_warning(s, user_id, now):
                _notify(svc, s, user_id, "recovery_codes_low", now, left=left)
    if used:
        log.info("recovery code used for account %s", user_id)
    return used


def _first_warning(s: Session, user_id: int, now: datetime) -> bool:
    moved = s.execute(
        update(TotpFactor)
        .where(TotpFactor.user_id == user_id, TotpFactor.codes_warned_at.is_(None))
        .values(codes_warned_at=now)
    )
    return rowcount(moved) == 1


def _check(
    svc: Services, user: Account, token: str, meta: RequestMeta, *, warn: bool = False
) -> None:
    # Brute force: 6 digits are few, so every try takes a failure slot before it runs
    # (the client's own if known to the account, else the shared per-account and per-IP
    # ones: services/known_clients.py); a right token gives it back.
    guess = known_clients.guess(svc, identity.email_key(user.email), meta, user.id)
    if totp.looks_like_token(token):
        ok = _use_totp(svc, user.id, token)
    else:
        ok = _use_recovery_code(svc, user.id, token, warn=warn)
    if not ok:
        raise TotpRejected()
    guess.succeeded()


def check_second_factor(svc: Services, user: Account, token: str | None, meta: RequestMeta) -> None:
    """At sign-in, after the password matched: nothing without MFA; else a valid token
    (or an unused recovery code) is required. TotpRequired when none was sent."""
    # Lost factor (services/mfa_reset.py): an operator's removal whose wait is over is
    # carried out now, before the factor is asked for, so the owner signs in with the
    # password alone even if no worker has run since.
    if not is_configured(svc, user.id):
        return
    settled = mfa_reset.settle(svc, user.id)
    # Bypass: "removed" is trusted only if the factor is really gone (a stale request
    # removes nothing, and a factor set up again must still be asked for).
    if settled == mfa_reset.REMOVED and not is_configured(svc, user.id):
        return
    if not token or not token.strip():
        raise TotpRequired()
    _check(svc, user, token, meta, warn=True)
    if settled == mfa_reset.PENDING:
        # The factor works, so it is not lost: the operator's pending removal of it is
        # cancelled (either the owner found it again, or the request came from someone
        # pretending to be them; a holder of the factor gains nothing from removing it).
        with transaction(svc.sessions) as s:
            row = accounts_repo.by_id(s, user.id)
            if row is not None:
                mfa_reset.cancel_pending(svc, s, row, svc.clock(), mfa_reset.SIGNED_IN)


def clear(svc: Services, user: Account, token: str, meta: RequestMeta) -> None:
    """Disable MFA; needs a valid token (or a recovery code, for a lost device).
    Audited (issue 8) with the account as actor: a wrong token too (a guess at the factor).
    """
    with audit.trail(svc, audit.TOTP_CLEAR, meta, account_id=user.id) as t:
        if not is_configured(svc, user.id):
            raise MfaState("MFA is not configured")
        _check(svc, user, token, meta)
        now = svc.clock()
        with transaction(svc.sessions) as s:
            s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
            s.execute(delete(TotpFactor).where(TotpFactor.user_id == user.id))
            row = accounts_repo.by_id(s, user.id)
            if row is not None:
                # The owner removed it: an operator's pending removal has nothing left to do
                # (and must never remove a factor set up after this one).
                mfa_reset.cancel_pending(svc, s, row, now, mfa_reset.CLEARED, notify=False)
                notices.send(svc, s, row, "mfa_disabled", now, {"by_operator": False})
            t.write(s)
    log.info("TOTP cleared for account %s", user.id)


def regenerate_codes(
    svc: Services, user: Account, session: tokens.SessionClaims | None, meta: RequestMeta
) -> list[str]:
    """10 new recovery codes; every older one (used or not) dies. Shown this once.

    Needs a session JWT from a sign-in within RELATCH_REAUTH_SECONDS that passed the
    second factor (FactorReauthRequired otherwise). Threat: whoever holds a stolen
    session, an API key or a lifted old JWT, but not the factor, would mint codes that
    work as the factor, lock the owner's own codes out, and keep a way past TOTP after
    the owner's reset and "this was not me". Audited; the owner is mailed with "this
    was not me" (a thief who did pass the factor is then found out).
    """
    with audit.trail(svc, audit.RECOVERY_CODES_NEW, meta, account_id=user.id) as t:
        if not is_configured(svc, user.id):
            raise MfaState("MFA is not configured")
        now = svc.clock()
        if session is None or not (
            tokens.signed_in_within(session, int(now.timestamp()), svc.settings.reauth_seconds)
            and second_factor.behind(svc, user.id, session)
        ):
            raise FactorReauthRequired()
        recovery = [codes.generate() for _ in range(RECOVERY_CODES)]
        with transaction(svc.sessions) as s:
            # Race with a clear: the factor must still be on when the codes are written
            # (no codes for a factor gone); this UPDATE also resets the low-codes notice.
            still_on = s.execute(
                update(TotpFactor)
                .where(TotpFactor.user_id == user.id, TotpFactor.sealed_secret.is_not(None))
                .values(codes_warned_at=None)
            )
            if rowcount(still_on) != 1:
                raise MfaState("MFA is not configured")
            _store_codes(svc, s, user.id, recovery, now)
            _notify(svc, s, user.id, "recovery_codes_new", now)
            t.write(s)
        log.info("recovery codes regenerated for account %s", user.id)
        return [codes.display(c) for c in recovery]


@dataclass(frozen=True)
class MfaStatus:
    enabled: bool
    codes_left: int
    reset_due: datetime | None  # an operator's removal pending (services/mfa_reset.py)


def status(svc: Services, user_id: int) -> MfaStatus:
    """Whether TOTP is on, how many recovery codes are left, any pending removal."""
    with svc.sessions() as s:
        enabled = configured_in(s, user_id)
        left = _codes_left(s, user_id) if enabled else 0
    return MfaStatus(enabled, left, mfa_reset.due_of(svc, user_id) if enabled else None)
