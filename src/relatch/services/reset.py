"""The reset use cases: request (record only), issue (worker), verify, reset by code.

Flow and states: core/reset_flow.md. Every failure of verify and reset is CodeRejected,
whatever its cause (unknown address, wrong, expired, used, revoked, exhausted code, and
for the mailed link a wrong, forged, expired or used token). The mailed link's use cases:
services/reset_link.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from anyio.to_thread import run_sync
from sqlalchemy import Select, delete, insert, select
from sqlalchemy.orm import Session

from relatch.core import codes, identity, keyed
from relatch.core.errors import CodeRejected, InvalidInput, RateLimited
from relatch.core.meta import RequestMeta
from relatch.infra import metrics
from relatch.services import audit, credentials, known_clients
from relatch.services import reset_retries as retries
from relatch.services.context import Services
from relatch.services.limits import Guess
from relatch.services.password_policy import check_new_password
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time, outage, outbox
from relatch.storage.commit_hooks import after_commit
from relatch.storage.db import transaction
from relatch.storage.models import ResetCode, ResetRequest, User

log = logging.getLogger(__name__)

PURPOSE = keyed.RESET_CODE
LINK_PURPOSE = keyed.RESET_LINK  # the mailed link's secret: a digest apart from the code's
NO_ACCOUNT = -1  # stands in for a missing account so unknown addresses do the same work


_RECORD = insert(ResetRequest)


def request_reset(svc: Services, email: str, meta: RequestMeta) -> None:
    """Record the request and return, in a transaction of its own (the command line, the
    tests; the API and the page use `request_reset_grouped`). No lookup, no mail, no
    hashing on this path.

    Enumeration (by response and by timing): known and unknown addresses take the same
    path here; the worker alone learns whether an account exists.
    """
    # Audit: the address is unknown here by design (no lookup), so only its digest is kept.
    with audit.trail(svc, audit.RESET_REQUEST, meta, login=email, resolve=False) as t:
        record = _recorder(svc, email, meta, t)
        with transaction(svc.sessions) as s:
            refused = record(s)
    if refused is not None:
        raise refused


async def request_reset_grouped(svc: Services, email: str, meta: RequestMeta) -> None:
    """`request_reset`, its writes committed together with other requests' (group commit,
    storage/group_commit.py): answered once its own rows are committed, with no thread
    hop of its own (issue 12). The same statements per request as `request_reset`, in the
    same order, known address or not; a refusal is answered like it (RateLimited)."""
    async with audit.trail(svc, audit.RESET_REQUEST, meta, login=email, resolve=False) as t:
        record = _recorder(svc, email, meta, t)
        refused = await svc.group_commit.run(record)
    if refused is not None:
        raise refused


def _recorder(
    svc: Services, email: str, meta: RequestMeta, t: audit.Trail
) -> Callable[[Session], RateLimited | None]:
    """The request's writes, as a function of the write transaction they run in (alone or
    in a group); it returns the refusal, if the limits refused, rather than raising it, so
    that a group's other requests still commit. InvalidInput at once for a bad address.

    Cheap (issue 12): one write transaction does it all (the known-client read, the limit
    counters when they live in the database, the row and its audit row). A refused request
    writes its audit row "rate_limited" in it and nothing else: the limits take their hits
    back (services/limits.py).
    """
    address = identity.checked_email(email)
    key = identity.email_key(address)

    def record(s: Session) -> RateLimited | None:
        # Mail bombing: per address (known or not: enumeration) and per IP;
        # services/limits. Lockout: a client known to the address's account (found by
        # digest, no account lookup, the same query for every address) has a bucket
        # strangers cannot spend.
        known = known_clients.find(svc, key, meta, known_clients.ANY_ACCOUNT, within=s)
        try:
            svc.limits.reset_requested(key, meta.client_ip, svc.clock(), known, within=s)
        except RateLimited as refused:
            t.write(s, audit.outcome_of(refused))
            return refused
        # A Core INSERT on the connection: the ORM's unit of work cost more than the
        # row (issue 12).
        s.connection().execute(
            _RECORD,
            {
                "email": address,
                "requested_at": svc.clock(),
                "client_ip": meta.client_ip,
                "request_id": meta.request_id,
            },
        )
        t.write(s, "recorded")
        return None

    # Timing: the worker is deliberately NOT woken here. It picks requests up on its
    # own schedule, so the extra work a known address causes (code, digest, mail) never
    # lands right behind this request where a prober could time it.
    return record


# Requests decided per transaction (issue 12): one BEGIN/COMMIT, one claim, one account
# lookup and one INSERT per table for the whole batch, where a transaction per request
# capped the worker at ~130 decisions/s.
DECISIONS_PER_TRANSACTION = 100


def process_requests(
    svc: Services, batch: int = 50, should_stop: Callable[[], bool] = lambda: False
) -> int:
    """Worker step: turn up to `batch` recorded requests into codes and mails, oldest
    first. Returns how many it took up (decided, or counted as failed); fewer than `batch`
    means none was left due.

    Throughput: up to DECISIONS_PER_TRANSACTION requests are decided in one transaction
    (`_decide_batch`).

    One hostile item must not stop recovery for everyone (issue 8): a batch that raises is
    rolled back whole (its claims with it) and its requests are then decided one
    transaction each (`_one_by_one`); the one that raises again is rolled back, counted
    against itself, retried after a backoff, and after its tries set aside as a dead
    letter that later passes skip (services/reset_retries.py). The others go on.

    Shutdown: `should_stop` is asked between transactions, never during one; the requests
    not reached stay recorded (unclaimed) for the next pass of any process.
    """
    now = svc.clock()
    taken = 0
    while taken < batch and not should_stop():
        want = min(DECISIONS_PER_TRANSACTION, batch - taken)
        try:
            done = _decide_batch(svc, now, want)
        except Exception as exc:
            if outage.unavailable(exc):
                # A database outage is not these requests' fault (issue 10): none spends a
                # try towards a dead letter; the pass ends, the next retries.
                raise
            # (The exception's class only: its text may quote an address.)
            log.warning(
                "a batch of reset requests failed (%s): deciding them one by one",
                type(exc).__name__,
            )
            done = _one_by_one(svc, now, want, should_stop)
        taken += done
        if done < want:
            break  # none left due (or a stop was asked)
    return taken


def _one_by_one(svc: Services, now: datetime, limit: int, should_stop: Callable[[], bool]) -> int:
    """Up to `limit` requests, each decided in its own transaction; a failure is counted
    against its request alone (the fallback of a batch that failed)."""
    taken = 0
    while taken < limit and not should_stop():
        held: list[int] = []
        try:
            if not _process_next(svc, now, held):
                break  # none left due
        except Exception as exc:  # any cause: counted against this request alone
            if outage.unavailable(exc) or not held:
                raise
            retries.count_failure(svc, held[0], exc)
        taken += 1
    return taken


_CLAIMED = (ResetRequest.id, ResetRequest.email, ResetRequest.client_ip, ResetRequest.request_id)


def _oldest_due(now: datetime, limit: int) -> Select[int]:
    """The oldest due requests; on PostgreSQL each is locked as it is picked (`FOR UPDATE
    SKIP LOCKED`), so a second process takes the next ones instead of queueing behind this
    transaction (on SQLite the transaction holds the one write lock)."""
    return (
        select(ResetRequest.id)
        .where(retries.due(now))
        .order_by(ResetRequest.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _decide_batch(svc: Services, now: datetime, limit: int) -> int:
    """Claim up to `limit` due requests and decide them all in one transaction; how many.

    The same decisions as `_process_next` one at a time, in fewer statements: one DELETE
    claims the batch, one SELECT finds its accounts, one UPDATE kills their older codes,
    one INSERT per table writes the codes, mails and audit rows. Enumeration: a batch's
    statements depend on how many of its addresses have accounts, never on which; and an
    unknown address and a deleted account's address are the same case.
    """
    with transaction(svc.sessions) as s:
        # Claim: two workers never handle one request. Privacy: the rows hold the typed
        # addresses in clear (known or not); once decided they are gone (`_process_next`).
        # The ids first, then the DELETE: inside `IN (subquery)` PostgreSQL may run the
        # LIMIT ... SKIP LOCKED subquery again for each row, and each run skips the rows
        # this statement already deleted, so one DELETE could claim past `limit` (seen
        # under load: 3 claimed with a limit of 1).
        ids = list(s.scalars(_oldest_due(now, limit)))
        if not ids:
            return 0
        claimed = sorted(
            s.execute(
                delete(ResetRequest).where(ResetRequest.id.in_(ids)).returning(*_CLAIMED)
            ).all(),
            key=lambda r: r.id,
        )
        users = accounts_repo.by_emails(s, [r.email for r in claimed])
        issued: list[User] = []
        trail: list[dict[str, Any]] = []
        for req in claimed:
            user = users.get(identity.email_key(req.email))
            origin = RequestMeta(client_ip=req.client_ip, request_id=req.request_id)
            if user is not None and user.suspended_at is not None:
                # Suspended (issue 11): no code; the request was answered like any other.
                trail.append(
                    audit.row(svc, audit.RESET_MAIL, "suspended", origin, account_id=user.id)
                )
            elif user is not None:
                issued.append(user)
                trail.append(
                    audit.row(svc, audit.RESET_MAIL, "code_sent", origin, account_id=user.id)
                )
            else:
                trail.append(
                    audit.row(svc, audit.RESET_MAIL, "no_account", origin, login=req.email)
                )
        if issued:
            issue_codes(svc, s, issued)
        audit.add_rows(s, trail)
    return len(claimed)


def _process_next(svc: Services, now: datetime, held: list[int]) -> bool:
    """Claim the oldest due request and decide it, in one transaction; False if none is
    due. The claimed request's id goes into `held` (to count a failure against it)."""
    with transaction(svc.sessions) as s:
        # Claim: one DELETE of the oldest due row (`_oldest_due`), so two workers never
        # handle one request.
        # Privacy: the row holds the typed address in clear (known or not); once decided
        # it is gone, and only the audit row (a keyed digest for an unknown address,
        # pruned after the retention period) remains. A rollback puts it back.
        claimed = s.execute(
            delete(ResetRequest)
            .where(ResetRequest.id == _oldest_due(now, 1).scalar_subquery())
            .returning(*_CLAIMED)
        ).first()
        if claimed is None:
            return False
        held.append(claimed.id)
        user = accounts_repo.by_email(s, claimed.email)
        origin = RequestMeta(client_ip=claimed.client_ip, request_id=claimed.request_id)
        if user is not None and user.suspended_at is not None:
            # Suspended (issue 11): no code; the request was answered like any other.
            audit.add(s, svc, audit.RESET_MAIL, "suspended", origin, account_id=user.id)
        elif user is not None:
            issue_code(svc, s, user)
            audit.add(s, svc, audit.RESET_MAIL, "code_sent", origin, account_id=user.id)
        else:
            audit.add(s, svc, audit.RESET_MAIL, "no_account", origin, login=claimed.email)
    return True


def issue_code(svc: Services, s: Session, user: User) -> None:
    """A fresh code and link for the account, mailed, in the caller's transaction; every
    older live code dies (a reset request's worker step, and "this was not me")."""
    issue_codes(svc, s, [user])


# Core, many rows per statement; the new ids come back matched by the link digest (256
# random bits each: unique), so the RETURNING order does not matter.
_NEW_CODES = insert(ResetCode).returning(ResetCode.id, ResetCode.link_digest)


def issue_codes(svc: Services, s: Session, users: Sequence[User]) -> None:
    """`issue_code` for each of `users`, in order, in one UPDATE and two INSERTs (codes,
    mails). An account named twice gets two codes and two mails, and only the later code
    lives, as if each had been issued in turn."""
    now = svc.clock()
    # A new request invalidates older codes: only the newest mail works.
    one_time.RESET_CODES.revoke_live_of(s, sorted({u.id for u in users}), now)
    newest = {u.id: n for n, u in enumerate(users)}
    expires = now + timedelta(seconds=svc.settings.reset_code_ttl)
    made: list[tuple[str, str]] = []
    rows: list[dict[str, Any]] = []
    for n, user in enumerate(users):
        code = codes.generate()
        # Lockout: the link's 256-bit secret cannot be guessed, so it needs no try counter
        # and strangers who use up the code's tries cannot kill it: the mailbox always works.
        secret = codes.link_secret()
        made.append((code, secret))
        rows.append(
            {
                "user_id": user.id,
                "digest": keyed.digest(svc.keys, PURPOSE, user.id, code),
                "link_digest": keyed.digest(svc.keys, LINK_PURPOSE, user.id, secret),
                "created_at": now,
                "expires_at": expires,
                "attempts": 0,
                # Killed at once by the account's later code in this batch.
                "revoked_at": None if newest[user.id] == n else now,
            }
        )
    # The row ids are part of the links' tokens. (Flushed first: the caller's pending ORM
    # changes go before this Core statement, as they went before the ORM row it replaces.)
    s.flush()
    made_ids = {d: i for i, d in s.connection().execute(_NEW_CODES, rows)}
    ids = [made_ids[r["link_digest"]] for r in rows]
    outbox.enqueue_many(
        s,
        svc.renderer,
        "reset_code",
        [
            (
                user.email,
                {
                    "name": credentials.greeting_name(user),
                    "code": codes.display(code),
                    "link_token": codes.link_token(code_id, secret),
                    "email": user.email,
                    "minutes": svc.settings.reset_code_ttl // 60,
                },
            )
            for user, code_id, (code, secret) in zip(users, ids, made, strict=True)
        ],
        now,
    )
    issued = len(users)
    after_commit(s, lambda: metrics.RESET_CODES.labels("issued").inc(issued))


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
        user = accounts_repo.by_email(s, address)
        account_id = user.id if user is not None else NO_ACCOUNT
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
    if user is None or matched is None:
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
    if not _consume_in_one_write(svc, code_id, user, new_hash, meta, t, slot):
        raise CodeRejected()


def _consume_in_one_write(
    svc: Services,
    code_id: int,
    user: User,
    new_hash: str,
    meta: RequestMeta,
    t: audit.Trail,
    slot: Guess | None,
) -> bool:
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
        if not one_time.RESET_CODES.consume(s, code_id, now):
            return False
        forgotten = credentials.apply_new_password(svc, s, user, new_hash, verified=True)
        if forgotten is not None:
            # The first proof of the address: what a squatter may have set up is gone
            # (services/unproven.py); the trail says so, with the resetting client.
            audit.add(s, svc, audit.UNPROVEN_PURGE, audit.OK, meta, account_id=user.id)
        # Lockout: the client that reset is known from now on (sign-in from it works at
        # once); takeover: every other known client is forgotten (a phisher's device).
        known_clients.keep_only(svc, s, user, meta, now, add=True)
        after_commit(s, metrics.RESET_CODES.labels("used").inc)
        t.write(s)
    return True
