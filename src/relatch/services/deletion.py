"""deleteCurrentUser / deleteUser: an account, and everything that signs in as it, gone.

Who confirms: the caller, with their password and, when they have one, their TOTP token,
checked like a sign-in and counted against the same failure budgets (services/limits.py,
known_clients.py): a stolen session alone cannot delete an account, nor guess its password
here faster than at login. For one's own account the caller is the account; for staff
deleting another account (services/staff.py decides who may) it is the staff member.

What goes, in one transaction:
- the `users` row; every credential hangs off it with ON DELETE CASCADE (API keys, TOTP
  factor and recovery codes, reset and activation codes, not-me links, OAuth codes, tokens
  and consents, known clients), so all of them die at the commit. Session JWTs and the
  OAuth sign-in cookie name the account by id, which now resolves to nothing, and ids are
  never handed out again (migration 0014: AUTOINCREMENT on SQLite), so no later account
  inherits them;
- mail queued to the address and not yet sent (a reset code on its way must not arrive
  after the account is gone); then the one notice that the account was deleted is queued.

What stays: audit rows name the account by id only; the deletion's own row adds a keyed
digest of the address (`relatch audit --account ADDRESS` finds it, a database dump does not
list it). The address and username are free: registering them again makes a new account.

Enumeration: with the row gone, a reset request (or code check) for the address does what
it does for an address that never had an account, since both find no row
(services/reset_requests.py).
"""

from __future__ import annotations

import logging
from datetime import datetime

from anyio.to_thread import run_sync
from sqlalchemy import delete
from sqlalchemy.orm import Session

from relatch.core import identity, passwords
from relatch.core.errors import (
    InvalidInput,
    LoginFailed,
    NotAuthenticated,
    RateLimited,
    UserNotFound,
)
from relatch.core.meta import RequestMeta
from relatch.services import audit, known_clients, mfa
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.services.credentials import greeting_name
from relatch.storage import accounts as accounts_repo
from relatch.storage import outbox
from relatch.storage.db import rowcount, transaction
from relatch.storage.models import OutboxMessage, User

log = logging.getLogger(__name__)

PASSWORD_NEEDED = "Enter the current password (password) to delete the account"  # noqa: S105


async def confirm_identity(
    svc: Services, who: Account, password: str | None, totp_token: str | None, meta: RequestMeta
) -> str | None:
    """The password hash `who`'s password was checked against, once the password and (when
    set) the TOTP token are right; else LoginFailed, TotpRequired or TotpRejected, as at
    login. InvalidInput when no password was sent (no guess spent on that)."""
    if password is None:
        raise InvalidInput(PASSWORD_NEEDED)
    # Guessing through a stolen session: a failure slot first (the client's own when known
    # to the account, else the shared per-account and per-IP ones), as at login.
    guess = await run_sync(known_clients.guess, svc, identity.email_key(who.email), meta, who.id)
    checked_hash = await run_sync(_stored_hash, svc, who.id)
    normalised = passwords.normalise(password)[: passwords.MAX_LENGTH + 1]  # bounded work
    try:
        ok = await svc.pool.verify(checked_hash, normalised)
    except RateLimited:
        await run_sync(guess.succeeded)  # the hashing pool was full: nothing was guessed
        raise
    if not ok:
        raise LoginFailed()
    await run_sync(guess.succeeded)
    # The second factor only after the password matched (its own message, its own slot).
    await run_sync(mfa.check_second_factor, svc, who, totp_token, meta)
    return checked_hash


def _stored_hash(svc: Services, account_id: int) -> str | None:
    with svc.sessions() as s:
        user = accounts_repo.by_id(s, account_id)
        return user.password_hash if user is not None else None


async def delete_account(
    svc: Services,
    target: Account,
    password: str | None,
    totp_token: str | None,
    meta: RequestMeta,
    *,
    actor: Account | None = None,
) -> None:
    """Delete `target`, confirmed by the password (and TOTP) of `actor` (staff) or, without
    one, of the account itself."""
    by_staff = actor is not None and actor.id != target.id
    who = actor if by_staff and actor is not None else target
    async with audit.trail(
        svc,
        audit.ACCOUNT_DELETE,
        meta,
        account_id=who.id,
        subject_id=target.id if by_staff else None,
    ) as t:
        t.login, t.keep_digest = target.email, True  # the address only as a keyed digest
        checked_hash = await confirm_identity(svc, who, password, totp_token, meta)
        await run_sync(_delete, svc, target.id, who.id, checked_hash, by_staff, t)
    log.info("account %s deleted%s", target.id, f" by staff account {who.id}" if by_staff else "")


def _delete(
    svc: Services,
    target_id: int,
    checker_id: int,
    checked_hash: str | None,
    by_staff: bool,
    t: audit.Trail,
) -> None:
    now = svc.clock()
    with transaction(svc.sessions) as s:
        # Race: a password changed (or the account deleted) since the check refuses this.
        if accounts_repo.with_hash(s, checker_id, checked_hash) is None:
            raise LoginFailed() if by_staff else NotAuthenticated()
        user = accounts_repo.by_id(s, target_id)
        if user is None:
            raise UserNotFound() if by_staff else NotAuthenticated()
        email, name = user.email, greeting_name(user)
        dropped = _drop_unsent_mail(s, email, now)
        # ON DELETE CASCADE takes every credential with it (module docstring).
        s.execute(delete(User).where(User.id == target_id))
        outbox.enqueue(
            s,
            svc.renderer,
            "account_deleted",
            email,
            {"name": name, "email": email, "when": now.strftime("%Y-%m-%d %H:%M UTC"),
             "by_staff": by_staff},
            now,
        )  # fmt: skip
        t.write(s)
    if dropped:
        log.info("account %s deleted: %d unsent mail(s) to it dropped", target_id, dropped)


def _drop_unsent_mail(s: Session, email: str, now: datetime) -> int:
    """Mail to the account's address not sent yet: pending, or left `sending` by a worker
    whose claim ran out (it would be sent again). A claim still held is a send under way:
    it cannot be called back, and its worker marks it when it ends."""
    unsent = (OutboxMessage.status == "pending") | (
        (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until < now)
    )
    return rowcount(
        s.execute(delete(OutboxMessage).where(OutboxMessage.recipient == email, unsent))
    )
