"""Activation: an account's address is proven before the account makes credentials (issue 11).

Threat: account pre-hijacking (Sudhodanan and Paverd, USENIX Security 2022). Whoever
signs up first with an address can sign in with it; if that is not the address's owner,
anything the account sets up (a TOTP factor, an API key, an OAuth grant) would greet the
owner after they recover the account through the mailbox. So a new account is
`activated: false` until its address is proven, by one of:

- the code of the activation mail (`activate`, signed in: the mailbox and the password),
- a successful reset (the mailbox; services/credentials.py), which, being the first proof,
  also removes whatever was set up before it (services/unproven.py),
- an operator (`relatch user create` makes activated accounts).

Until then the account signs in, reads itself and activates, and nothing more that makes a
credential (`require_activated`: API keys, TOTP, OAuth consent and the password grant).

A code has the reset code's format (core/codes.py), lives 24 hours, dies after 5 wrong
tries, and only its keyed digest is stored, bound to the account (core/keyed.py
ACTIVATION_CODE). One live code per account: a new one kills the older ones.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from relatch.core import codes, keyed
from relatch.core.errors import (
    ActivationCodeRejected,
    ActivationRequired,
    AlreadyActivated,
    NotAuthenticated,
    UserNotFound,
)
from relatch.core.meta import RequestMeta
from relatch.infra import metrics
from relatch.services import audit
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.services.credentials import greeting_name
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time, outbox
from relatch.storage.commit_hooks import after_commit
from relatch.storage.db import transaction
from relatch.storage.models import ActivationCode, User

log = logging.getLogger(__name__)

PURPOSE = keyed.ACTIVATION_CODE
TTL = timedelta(hours=24)  # the contract's 24 hours
MAX_TRIES = 5  # the contract's 5 tries: 5 guesses of 40 bits per mailed code
TRIES = one_time.Tries(ActivationCode.attempts, MAX_TRIES)


def require_activated(user: Account) -> None:
    """ActivationRequired unless the account's address is proven.

    Account pre-hijacking: a credential made by an account whose address nobody proved may
    belong to someone who signed up with another person's address; refused until the
    address's owner has shown the mailbox (activation code or reset).
    """
    if not user.email_verified:
        raise ActivationRequired()


def issue_code(svc: Services, s: Session, user: User) -> None:
    """A fresh activation code for the account, mailed, in the caller's transaction (the
    sign-up's, or a new request's); every older live code dies (one live code)."""
    now = svc.clock()
    one_time.ACTIVATION_CODES.revoke_live(s, user.id, now)
    code = codes.generate()
    s.add(
        ActivationCode(
            user_id=user.id,
            digest=keyed.digest(svc.keys, PURPOSE, user.id, code),
            created_at=now,
            expires_at=now + TTL,
            attempts=0,
        )
    )
    after_commit(s, metrics.ACTIVATION_CODES.labels("issued").inc)
    outbox.enqueue(
        s,
        svc.renderer,
        "activation_code",
        user.email,
        {
            # Phishing through our own mail: the name is the signer-up's words until the
            # address is proven (services/credentials.greeting_name), so not shown yet.
            "name": greeting_name(user),
            "code": codes.display(code),
            "email": user.email,
            "hours": int(TTL.total_seconds()) // 3600,
        },
        now,
    )


def request_code(
    svc: Services, user: Account, meta: RequestMeta, *, actor: Account | None = None
) -> None:
    """requestActivationCodeCurrentUser (and requestActivationCodeUser: `actor` is the
    staff member asking for `user`; audited with them as actor): a new code mailed, the
    older one dead.

    AlreadyActivated for a proven address; RateLimited past the per-account limit (mail
    bombing of the address: services/limits.activation_requested; staff spend the
    account's budget too).
    """
    by_staff = actor is not None and actor.id != user.id
    with audit.trail(
        svc,
        audit.ACTIVATION_REQUEST,
        meta,
        account_id=actor.id if by_staff and actor is not None else user.id,
        subject_id=user.id if by_staff else None,
    ) as t:
        if user.email_verified:
            raise AlreadyActivated()
        svc.limits.activation_requested(user.id, svc.clock())
        with transaction(svc.sessions) as s:
            row = accounts_repo.by_id(s, user.id)
            if row is None:  # gone since the caller was authenticated
                raise UserNotFound() if by_staff else NotAuthenticated()
            if row.email_verified:  # activated since the caller was authenticated
                raise AlreadyActivated()
            issue_code(svc, s, row)
            t.write(s)


def activate(svc: Services, user: Account, entered: str, meta: RequestMeta) -> None:
    """activateCurrentUser: prove the address with the mailed code.

    ActivationCodeRejected for a wrong, expired, used, revoked or exhausted code (one
    answer). Brute force: the per-IP failure budget takes a slot first, as for reset
    codes (RateLimited), and the try is counted, committed, before the comparison, guarded
    by `attempts < 5` in the same UPDATE (storage/one_time.py), so parallel guesses cannot
    exceed the budget; the comparison is constant time over every live candidate.
    """
    with audit.trail(svc, audit.ACTIVATE, meta, account_id=user.id) as t:
        if user.email_verified:
            raise AlreadyActivated()
        now = svc.clock()
        guess = svc.limits.code_guess(meta.client_ip, now)
        canonical = codes.canonical(entered) or ""
        rows = one_time.ACTIVATION_CODES.count_try(svc.sessions, user.id, now, TRIES)
        matched: int | None = None
        for code_id, stored in rows or [(0, "0" * 64)]:  # (no early exit; equal work)
            if keyed.matches(svc.keys, PURPOSE, user.id, canonical, stored=stored) and canonical:
                matched = code_id
        metrics.count_killed(rows.last_try, matched, metrics.ACTIVATION_CODES)
        if matched is None:
            raise ActivationCodeRejected()
        guess.succeeded()  # the right code is no failure
        with transaction(svc.sessions) as s:
            # Replay: one conditional UPDATE; of parallel uses of the code only one wins.
            if not one_time.ACTIVATION_CODES.consume(s, matched, now):
                raise ActivationCodeRejected()
            accounts_repo.mark_proven(s, user.id)
            after_commit(s, metrics.ACTIVATION_CODES.labels("used").inc)
            t.write(s)
    log.info("account %s activated", user.id)
