"""A changed address (issue 14): ask (`request`), prove the new address (`confirm`), and the
old address's way back (`check_undo`, `undo`).

States of one change: asked (a code mailed to the new address) -> confirmed (the address
changed, a notice with an undo link mailed to the old one) -> optionally undone (the old
address back, every session ended, a reset code mailed to it). A newer request, 5 wrong
codes, expiry or a "this was not me" kill an asked change.

Threats, and where each is answered:
- A stolen session (a lifted cookie, a leaked API key, a third party's OAuth token) must
  not move the account to its thief's mailbox, from where a reset takes it for good: both
  steps need a recent sign-in with a session JWT (auth/dependencies.py `recent_session`;
  an API key or an OAuth token proves no sign-in), as changing the password does, and
  that sign-in must have passed the second factor when one is set
  (`require_second_factor`).
- Someone who does change it (a phished password, an unlocked laptop): the old address
  gets a notice with a one-time undo link (7 days) that puts the address back, ends every
  session, token and API key, disables the password and mails a reset code there
  (services/not_me.take_back). While the link lives the old address stays reserved to this
  account (`reserved`), so nobody can take it to block the undo; of several undo links
  of one account, using one kills those issued after it, never those before (the first
  address of a hostile chain is the owner's; an intruder's own later link cannot cancel it).
- Enumeration of addresses: the request always answers success and does the same work;
  if the new address is another account's (or reserved), that address gets a mail saying
  someone tried to use it instead of the code, and `confirm` then fails with the wrong
  code's error. Uniqueness is enforced at `confirm` (the unique index decides races).
- Brute force of the code: the reset code's format (40 bits), 5 tries counted before the
  comparison (storage/one_time.py), the reset code's life, one live change per account,
  the per-IP failure budget.
- Mail bombing: a request counts against the reset limits (per new address and per IP:
  services/limits.py `reset_requested`), one budget for all mail asked for an address.
- An address never proven (an account whose sign-up typed someone else's address): its
  holder gets the notice but no undo link, which would hand them the account.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relatch.core import codes, identity, keyed, tokens
from relatch.core.errors import (
    AddressTaken,
    EmailChangeRejected,
    LinkRejected,
    NotAuthenticated,
    ReauthRequired,
    SameEmail,
)
from relatch.core.meta import RequestMeta
from relatch.services import audit, not_me, not_me_links, notices, second_factor
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time, outbox
from relatch.storage.db import transaction
from relatch.storage.models_email import EmailChange, EmailUndoLink

log = logging.getLogger(__name__)

PURPOSE = keyed.EMAIL_CHANGE_CODE
MAX_TRIES = 5  # as an activation code: 5 guesses of 40 bits per mailed code
TRIES = one_time.Tries(EmailChange.attempts, MAX_TRIES)
UNDO = not_me_links.EMAIL_UNDO


def ttl(svc: Services) -> timedelta:
    """A code's life: the reset code's (RELATCH_RESET_CODE_TTL, at most 10 minutes)."""
    return timedelta(seconds=svc.settings.reset_code_ttl)


def reserved(s: Session, key: str, now: datetime, account_id: int) -> bool:
    """Whether another account's live undo link holds the address of `key`: it may come back
    to that account, so no one else may take it (the undo would otherwise be blocked)."""
    live = one_time.EMAIL_UNDO_LINKS.live(now)
    held = select(EmailUndoLink.id).where(
        EmailUndoLink.old_email_key == key, EmailUndoLink.user_id != account_id, live
    )
    return s.scalars(held.limit(1)).first() is not None


def reserved_keys(s: Session, keys: list[str], now: datetime) -> set[str]:
    """The address keys among `keys` that an account's live undo link holds (`reserved`,
    for many new accounts at once: an import)."""
    held = select(EmailUndoLink.old_email_key).where(
        EmailUndoLink.old_email_key.in_(keys), one_time.EMAIL_UNDO_LINKS.live(now)
    )
    return set(s.scalars(held))


def _held_by_another(s: Session, address: str, now: datetime, account_id: int) -> bool:
    # Timing (enumeration): both queries run whatever the first one finds.
    holder = accounts_repo.by_email(s, address)
    held = reserved(s, identity.email_key(address), now, account_id)
    return held or (holder is not None and holder.id != account_id)


def require_second_factor(svc: Services, user: Account, session: tokens.SessionClaims) -> None:
    """ReauthRequired unless the caller's sign-in passed the second factor (when one is set).

    Takeover: a session that signed in with the password alone before TOTP was turned on
    (a phished password, then the owner turned TOTP on) must not move the address; the
    recent-sign-in window alone would let it (services/second_factor.py)."""
    if not second_factor.passed_if_set(svc, user.id, session):
        raise ReauthRequired()


def request(
    svc: Services,
    user: Account,
    session: tokens.SessionClaims,
    new_email: str,
    meta: RequestMeta,
) -> None:
    """Ask to move the account to `new_email`: a code goes there (or, if another account
    holds it, a mail saying someone tried). InvalidInput for an address that cannot be
    one; SameEmail for the account's own; RateLimited past the reset limits."""
    with audit.trail(svc, audit.EMAIL_CHANGE_REQUEST, meta, account_id=user.id) as t:
        require_second_factor(svc, user, session)
        address = identity.checked_email(new_email)
        key = identity.email_key(address)
        if key == identity.email_key(user.email):
            raise SameEmail()  # the caller's own address: no one else's secret
        now = svc.clock()
        # Mail bombing: the reset requests' per-address and per-IP budgets (one budget for
        # every mail asked for an address); the same keys whether or not it is taken.
        svc.limits.reset_requested(key, meta.client_ip, now)
        with transaction(svc.sessions) as s:
            row = accounts_repo.by_id(s, user.id)
            if row is None:  # deleted since the caller was authenticated
                raise NotAuthenticated()
            # One live change per account: an older code dies with this request.
            one_time.EMAIL_CHANGES.revoke_live(s, user.id, now)
            # Equal work (enumeration): a code and its row either way; for a taken address
            # the code is mailed to no one, so no code can ever confirm that row.
            code = codes.generate()
            s.add(
                EmailChange(
                    user_id=user.id,
                    new_email=address,
                    digest=keyed.digest(svc.keys, PURPOSE, user.id, code),
                    created_at=now,
                    expires_at=now + ttl(svc),
                    attempts=0,
                )
            )
            # Enumeration: one mail to the new address either way, one answer to the caller.
            # The address's owner learns someone tried (they may have two accounts, or be
            # targeted); the caller learns nothing.
            taken = _held_by_another(s, address, now, user.id)
            template = "email_change_taken" if taken else "email_change_code"
            context = {
                "code": codes.display(code),
                "email": address,
                "minutes": svc.settings.reset_code_ttl // 60,
            }
            if taken:
                context = {"email": address}  # (the code is no one's)
            outbox.enqueue(s, svc.renderer, template, address, context, now)
            t.write(s, "taken" if taken else audit.OK)


def confirm(
    svc: Services,
    user: Account,
    session: tokens.SessionClaims,
    entered: str,
    meta: RequestMeta,
) -> None:
    """Enter the code mailed to the new address: the address changes (proven), the old one
    gets a notice with an undo link. EmailChangeRejected for every failure (wrong, expired,
    used, revoked or exhausted code; the address taken meanwhile)."""
    with audit.trail(svc, audit.EMAIL_CHANGE, meta, account_id=user.id) as t:
        require_second_factor(svc, user, session)
        now = svc.clock()
        # Brute force: the per-IP failure budget takes a slot first; the try is counted,
        # committed, before the comparison (storage/one_time.py), over every live row.
        guess = svc.limits.code_guess(meta.client_ip, now)
        canonical = codes.canonical(entered) or ""
        rows = one_time.EMAIL_CHANGES.count_try(svc.sessions, user.id, now, TRIES)
        matched: int | None = None
        for change_id, stored in rows or [(0, "0" * 64)]:  # (no early exit; equal work)
            if keyed.matches(svc.keys, PURPOSE, user.id, canonical, stored=stored) and canonical:
                matched = change_id
        if matched is None:
            raise EmailChangeRejected()
        guess.succeeded()  # the right code is no failure
        try:
            with transaction(svc.sessions) as s:
                _apply(svc, s, matched, user, now)
                t.write(s)
        except IntegrityError:
            # Race: another account took the address between the check and the write; the
            # unique index refused this one (no 500), with the wrong code's answer.
            raise EmailChangeRejected() from None
    log.info("account %s changed its address", user.id)


def _apply(svc: Services, s: Session, change_id: int, user: Account, now: datetime) -> None:
    # Replay: one conditional UPDATE; of parallel uses of the code only one wins.
    if not one_time.EMAIL_CHANGES.consume(s, change_id, now):
        raise EmailChangeRejected()
    change = s.get(EmailChange, change_id)
    row = accounts_repo.by_id(s, user.id)
    if change is None or row is None:
        raise EmailChangeRejected()
    # Enumeration: an address another account holds (or has reserved) fails like a wrong
    # code; the caller who asked for it never had its code anyway.
    if _held_by_another(s, change.new_email, now, row.id):
        raise EmailChangeRejected()
    context: dict[str, object] = {}
    if row.email_verified:
        # Takeover: the old address's way back. Only for a proven address: the holder of
        # an address never proven (a typo at sign-up) must not be handed the account.
        context["undo_url"] = not_me_links.issue(
            svc,
            s,
            row.id,
            now,
            UNDO,
            old_email=row.email,
            old_email_key=identity.email_key(row.email),
        )
        context["undo_days"] = UNDO.ttl.days
    # To the old address (`row` still holds it): sent before the change below.
    notices.send(svc, s, row, "email_changed", now, context, not_me=False)
    accounts_repo.set_email(s, row.id, change.new_email, verified=True)
    # Codes mailed to the old address die with it (a reset code there must not outlive the
    # move; an activation code is pointless now the new address is proven).
    one_time.RESET_CODES.revoke_live(s, row.id, now)
    one_time.ACTIVATION_CODES.revoke_live(s, row.id, now)


def check_undo(svc: Services, token: str | None, meta: RequestMeta) -> None:
    """LinkRejected unless the undo link is live. Uses nothing up (mail scanners fetch
    links: the page's GET must not act)."""
    with audit.trail(svc, audit.EMAIL_UNDO_VIEW, meta) as t, svc.sessions() as s:
        link = not_me_links.find_live(svc, s, token, svc.clock(), UNDO)
        if link is None:
            raise LinkRejected()
        t.account_id = link.user_id


def undo(svc: Services, token: str | None, meta: RequestMeta) -> None:
    """Put the old address back and take the account back (services/not_me.take_back), in
    one transaction; single use. LinkRejected for a dead or forged link; AddressTaken when
    another account holds the address now (nothing changes, the link stays usable)."""
    try:
        with audit.trail(svc, audit.EMAIL_UNDO, meta) as t, transaction(svc.sessions) as s:
            now = svc.clock()
            link = not_me_links.find_live(svc, s, token, now, UNDO)
            if link is None:
                raise LinkRejected()
            t.account_id = link.user_id
            # Replay: one conditional UPDATE consumes the link; a second use finds none.
            if not one_time.EMAIL_UNDO_LINKS.consume(s, link.id, now):
                raise LinkRejected()
            user = accounts_repo.by_id(s, link.user_id)
            if user is None:
                raise LinkRejected()
            old: EmailUndoLink = link.row
            holder = accounts_repo.by_email(s, old.old_email)
            if holder is not None and holder.id != user.id:
                raise AddressTaken()  # reserved, so only an operator's import or create
            # The intruder's own links die (issued after this one, to addresses the account
            # moved to since); earlier ones stay: an intruder's later link must not cancel
            # the owner's.
            _kill_later_links(s, user.id, old.id, now)
            accounts_repo.set_email(s, user.id, old.old_email, verified=True)
            s.refresh(user)  # take_back mails the reset code to the restored address
            not_me.take_back(svc, s, user, meta, now)
            t.write(s)
    except IntegrityError:
        raise AddressTaken() from None  # the same, raced in between (the unique index)
    log.info("account %s undid a change of address", t.account_id)


def _kill_later_links(s: Session, account_id: int, link_id: int, now: datetime) -> None:
    s.execute(
        update(EmailUndoLink)
        .where(
            EmailUndoLink.user_id == account_id,
            EmailUndoLink.id > link_id,
            one_time.EMAIL_UNDO_LINKS.live(now),
        )
        .values(used_at=now)
    )
