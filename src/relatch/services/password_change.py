"""changePasswordCurrentUser: a signed-in person replaces their password.

The current password is checked again (ASVS 5.0 6.2.3): a stolen session alone must not
be enough to take the account over. Success revokes every session (generation bump in
apply_new_password) and hands the caller a renewed one, so only they stay signed in.

Only a session JWT may call this (auth/dependencies.py `session_caller`), and the renewed
token keeps that session's sign-in time and expiry: the password is checked here, the
second factor is not, so what comes out must not count as a newer sign-in (issue 8).
"""

from __future__ import annotations

import hmac

from anyio.to_thread import run_sync

from relatch.core import identity, passwords
from relatch.core.errors import LoginFailed, PasswordRejected
from relatch.core.meta import RequestMeta
from relatch.services import accounts, audit, known_clients, sign_in_sessions
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.services.credentials import apply_new_password
from relatch.services.password_policy import SAME_AS_CURRENT
from relatch.storage import accounts as accounts_repo
from relatch.storage.db import transaction


async def change_password(
    svc: Services,
    user: Account,
    current_password: str,
    new_password: str,
    meta: RequestMeta,
    *,
    signed_in_at: int,
    session_id: str | None = None,
) -> str:
    """Store the new password and return the caller's session JWT for the new generation,
    with `signed_in_at`, the sign-in time of the caller's session, and its session record
    `session_id` (every other session ends: services/sign_in_sessions.py).

    LoginFailed (the login's one message) if the current password is wrong;
    PasswordRejected, saying what to change, if the new one breaks the policy.
    Database steps run in worker threads; both hashes are awaited (infra/hashing_pool.py).
    """
    async with audit.trail(svc, audit.PASSWORD_CHANGE, meta, account_id=user.id) as t:
        current = passwords.normalise(current_password)[: passwords.MAX_LENGTH + 1]
        # Guessing through a stolen session: the same argon2 verify and message as login,
        # and the same failure budget (the client's own if known, else the shared ones).
        guess = await run_sync(
            known_clients.guess, svc, identity.email_key(user.email), meta, user.id
        )
        # The hash the check is made against; `_store` changes it only if still this one.
        checked_hash = await run_sync(_stored_hash, svc, user.id)
        if not await svc.pool.verify(checked_hash, current):
            raise LoginFailed()
        await run_sync(guess.succeeded)
        ctx = passwords.PasswordContext(username=user.username, email=user.email)
        normalised = passwords.check(new_password, ctx, svc.password_rules)
        # The current password is already known here: no second argon2 verify needed.
        if hmac.compare_digest(normalised.encode(), current.encode()):
            raise PasswordRejected(SAME_AS_CURRENT)
        new_hash = await svc.pool.hash(normalised, follow_up=True)  # after the verify
        return await run_sync(
            _store, svc, user.id, checked_hash, new_hash, meta, t, (signed_in_at, session_id)
        )


def _stored_hash(svc: Services, account_id: int) -> str | None:
    with svc.sessions() as s:
        user = accounts_repo.by_id(s, account_id)
        return user.password_hash if user is not None else None


def _store(
    svc: Services,
    account_id: int,
    checked_hash: str | None,
    new_hash: str,
    meta: RequestMeta,
    t: audit.Trail,
    session: tuple[int, str | None],
) -> str:
    signed_in_at, session_id = session
    with transaction(svc.sessions) as s:
        # Race: a reset or another change since the check wins; this one is refused.
        fresh = accounts_repo.with_hash(s, account_id, checked_hash)
        if fresh is None:
            raise LoginFailed()
        apply_new_password(svc, s, fresh, new_hash)
        # Takeover: only the client that changed the password stays known.
        known_clients.keep_only(svc, s, fresh, meta, svc.clock(), add=True)
        t.write(s)
        s.flush()
        s.refresh(fresh)
        # The caller's session lives on under the new generation; every other one is dead
        # (older generation). A caller without a record (pre-upgrade JWT) gets a new one.
        kept = session_id if sign_in_sessions.renew(s, fresh, session_id) else None
    # Second-factor bypass / sudo mode: the caller's sign-in time, never "now".
    return accounts.issue_session(
        svc, Account.of(fresh), meta=meta, signed_in_at=signed_in_at, session_id=kept
    )
