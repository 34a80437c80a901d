"""The reset use cases of a code: verify it, reset with it (the requests and the issuing of
codes: services/reset_requests.py).

Flow and states: core/reset_flow.md. Every failure of verify and reset is CodeRejected,
whatever its cause (unknown address, wrong, expired, used, revoked, exhausted code, and
for the mailed link a wrong, forged, expired or used token). The mailed link's use cases:
services/reset_link.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from anyio.to_thread import run_sync
from sqlalchemy.orm import Session

from relatch.core import codes, identity, keyed
from relatch.core.errors import CodeRejected, InvalidInput, RateLimited
from relatch.core.meta import RequestMeta
from relatch.infra import metrics
from relatch.services import audit, credentials, known_clients
from relatch.services.context import Services
from relatch.services.limits import Guess
from relatch.services.password_policy import check_new_password
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time
from relatch.storage.commit_hooks import after_commit
from relatch.storage.db import transaction
from relatch.storage.models import ResetCode, User

log = logging.getLogger(__name__)

PURPOSE = keyed.RESET_CODE
LINK_PURPOSE = keyed.RESET_LINK  # the mailed link's secret: a digest apart from the code's
NO_ACCOUNT = -1  # stands in for a missing account so unknown addresses do the same work


def _tries(svc: Services, known: bool) -> one_time.Tries:
    """The try counter in play: a client known to the account counts apart (lockout)."""
    column = ResetCode.known_attempts if known else ResetCode.attempts
    return one_time.Tries(column, svc.settings.reset_code_max_attempts)


@dataclass(frozen=True)
class _Match:
    user: User
    code_id: int
    known: bool  # the try was counted in known_attempts (a client known to the account)
    guess: Guess  # the failure slot the try took: a right code gives it back at its end


def _count_and_match(svc: Services, email: str, entered: str, meta: RequestMeta) -> _Match:
    """Count one try against the live code, then compare; CodeRejected on any failure.

    Brute force: the try is counted in a committed write *before* the comparison,
    guarded by `attempts < max` (`known_attempts < max` for a client known to the
    account), so parallel guesses cannot exceed the budget. Enumeration: an unknown
    address runs the same statements and digest. Guessing across codes: the per-IP
    failure budget takes a slot first, in the same write (RateLimited).
    Lockout: no per-account budget here, so strangers' failures never refuse the code
    from the owner's mailbox (bound: 5 tries per code from unknown clients and 5 from known
    ones, codes per address per window: docs/security.md 6.3.1).

    Cheap (issue 12): one read session (account, known client) and one write (slot, try,
    the spent codes read); a right code's slot goes back in the write that ends the
    request (`verify`, `_consume_code`), not in one of its own.
    """
    try:
        address = identity.checked_email(email)
    except InvalidInput:
        svc.limits.code_guess(meta.client_ip, svc.clock())  # garbage still takes a slot
        raise CodeRejected() from None
    key = identity.email_key(address)
    canonical = codes.canonical(entered) or ""
    now = svc.clock()
    with svc.sessions() as s:  # one read session for both look-ups
        # Timing: the id alone, so that a known address builds no account object more
        # than an unknown one (the account is read after a right code, below).
        found = accounts_repo.id_by_email(s, address)
        account_id = found if found is not None else NO_ACCOUNT
        # Lockout: strangers who spend a code's tries must not kill it for the owner's own
        # device or network, so a client known to the account counts its tries apart (5
        # more per code, for known clients only). Enumeration: the lookup runs for every
        # address.
        known_client = known_clients.find(svc, key, meta, account_id, within=s)
    known = known_client is not None
    tries = _tries(svc, known)
    with transaction(svc.sessions) as s:
        guess = svc.limits.code_guess(meta.client_ip, now, known_client, within=s)
        # Counted and committed (this transaction) before the comparison below
        # (storage/one_time.py). Timing: without a live code (unknown address, none asked,
        # spent) the address's decoy row takes the try, so both sides write one row.
        slot = one_time.decoy_slot(key)
        rows = one_time.RESET_CODES.count_try(svc.sessions, account_id, now, tries, slot, within=s)
        # Read for every check, live code or not (timing would tell a live code, hence an
        # account, from none).
        spent = one_time.RESET_CODES.spent_digests(s, account_id, now, tries)
    matched: int | None = None
    for code_id, stored in rows or [(0, "0" * 64)]:
        # Constant time, current and fallback keys; no early exit.
        if keyed.matches(svc.keys, PURPOSE, account_id, canonical, stored=stored) and canonical:
            matched = code_id
    metrics.count_killed(rows.last_try, matched)
    if matched is None and _matches_spent(svc, account_id, canonical, spent):
        # A race, not a guess: 20 parallel resets with one code use up its tries or find it
        # consumed by the winner; the losers held the right code, so they spend no budget.
        guess.succeeded()
    if found is None or matched is None:
        raise CodeRejected()
    # A right code: its holder learns nothing from this read's time that the success does
    # not tell them.
    with svc.sessions() as s:
        user = accounts_repo.by_id(s, found)
    if user is None:  # deleted meanwhile
        raise CodeRejected()
    return _Match(user, matched, known, guess)


def _matches_spent(svc: Services, account_id: int, canonical: str, spent: list[str]) -> bool:
    """Whether `canonical` is one of the account's `spent` codes (unexpired and not revoked
    but already consumed or out of tries). Still refused; it only decides whether the try
    was a guess. Enumeration: an unknown address runs a dummy compare.
    Oracle: whether the slot came back tells a guesser only about a code that cannot be
    used any more (consumed for good; out of tries, which only a right try in flight can
    give back, and then one try at most), each query still spends a per-IP slot."""
    found = False
    for digest in spent or ["0" * 64]:  # (no early exit)
        found |= keyed.matches(svc.keys, PURPOSE, account_id, canonical, stored=digest)
    return found and bool(canonical)


def _give_back_try(svc: Services, match: _Match, t: audit.Trail | None = None) -> None:
    """A right code was shown without being used: that try was not a guess, nor its slot.
    One write (issue 12), with `t`'s "ok" row if given; the limit rows first, in the order
    of the try's own write (deadlock: two transactions locking the same rows in opposite
    orders)."""
    with transaction(svc.sessions) as s:
        match.guess.succeeded(within=s)
        one_time.RESET_CODES.give_back_try(s, match.code_id, _tries(svc, match.known))
        if t is not None:
            t.write(s)


def verify(svc: Services, email: str, code: str, meta: RequestMeta) -> None:
    """Whether a code is valid, without using it up. CodeRejected if not."""
    with audit.trail(svc, audit.CODE_CHECK, meta, login=email) as t:
        match = _count_and_match(svc, email, code, meta)
        t.account_id = match.user.id
        _give_back_try(svc, match, t)


async def reset(svc: Services, email: str, code: str, new_password: str, meta: RequestMeta) -> None:
    """Database steps in worker threads; the two argon2 calls (policy verify, new hash)
    awaited between them, holding no thread and no lock (infra/hashing_pool.py)."""
    async with audit.trail(svc, audit.RESET, meta, login=email) as t:
        match = await run_sync(_count_and_match, svc, email, code, meta)
        t.account_id = match.user.id
        # A right code with a refused password was no guess: its try is given back.
        refused = functools.partial(_give_back_try, svc, match)
        await use_code(
            svc, match.code_id, match.user, new_password, meta, t, refused=refused, slot=match.guess
        )


async def use_code(
    svc: Services,
    code_id: int,
    user: User,
    new_password: str,
    meta: RequestMeta,
    t: audit.Trail,
    *,
    refused: Callable[[], None] | None = None,
    slot: Guess | None = None,
) -> None:
    """The end of a reset by code or by link (one row): check the new password against the
    policy (`refused` runs, in a worker thread, if it is refused), hash it, use the row up
    (and give `slot`, the right code's failure slot, back in the same write).

    Both argon2 calls are awaited outside the transaction: no thread and no lock held.
    """
    try:
        normalised = await check_new_password(
            svc,
            new_password,
            username=user.username,
            email=user.email,
            current_hash=user.password_hash,
        )
    except Exception:
        if refused is not None:
            await run_sync(refused)
        raise
    try:
        # The second hash of this reset (the policy's verify was admitted): a follow-up.
        new_hash = await svc.pool.hash(normalised, follow_up=user.password_hash is not None)
    except RateLimited:
        # Lockout by overload: a right code whose hash found the pool full was no guess.
        # Without its try back, a flood of logins could burn the owner's code, five
        # retries and it is dead (found measuring issue 12: the policy's verify got in,
        # the hash after it was refused).
        if refused is not None:
            await run_sync(refused)
        raise
    await run_sync(_consume_code, svc, code_id, user, new_hash, meta, t, slot)


def _consume_code(
    svc: Services,
    code_id: int,
    user: User,
    new_hash: str,
    meta: RequestMeta,
    t: audit.Trail,
    slot: Guess | None = None,
) -> None:
    """Use the code's row up and set the password, in one transaction (`slot` given back
    in it). CodeRejected if another request used the row first."""
    now = svc.clock()
    with transaction(svc.sessions) as s:
        # The right code's slot first: it was no failure, even if another request used the
        # row meanwhile (a race); and the limit rows before the code's row, the order of
        # the try's write (deadlock: two transactions locking rows in opposite orders).
        if slot is not None:
            slot.succeeded(within=s)
        # Replay: one conditional UPDATE (storage/one_time.py); only the request that flips
        # consumed_at wins, so 20 parallel resets give one success, and a code used through
        # its link (or the link after its code) is refused (the slot given back commits).
        used = one_time.RESET_CODES.consume(s, code_id, now)
        if used:
            _set_password(svc, s, user, new_hash, meta, now)
            t.write(s)
    if not used:
        raise CodeRejected()


def _set_password(
    svc: Services, s: Session, user: User, new_hash: str, meta: RequestMeta, now: datetime
) -> None:
    forgotten = credentials.apply_new_password(svc, s, user, new_hash, verified=True)
    if forgotten is not None:
        # The first proof of the address: what a squatter may have set up is gone
        # (services/unproven.py); the trail says so, with the resetting client.
        audit.add(s, svc, audit.UNPROVEN_PURGE, audit.OK, meta, account_id=user.id)
    # Lockout: the client that reset is known from now on (sign-in from it works at
    # once); takeover: every other known client is forgotten (a phisher's device).
    known_clients.keep_only(svc, s, user, meta, now, add=True)
    after_commit(s, metrics.RESET_CODES.labels("used").inc)
