"""The reset requests: record one (the request path), and decide them (the worker's step):
a code and a link issued and mailed for an account, nothing for an unknown address.

Flow and states: core/reset_flow.md. Enumeration: the request path never looks the address
up; only the worker learns whether an account exists. Checking and using a code:
services/reset.py; the mailed link: services/reset_link.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, insert, select
from sqlalchemy.orm import Session

from relatch.core import codes, identity, keyed
from relatch.core.errors import RateLimited
from relatch.core.meta import RequestMeta
from relatch.infra import metrics
from relatch.services import audit, credentials, known_clients
from relatch.services import reset_retries as retries
from relatch.services.context import Services
from relatch.services.reset import LINK_PURPOSE, PURPOSE
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time, outage, outbox
from relatch.storage.commit_hooks import after_commit
from relatch.storage.db import transaction
from relatch.storage.models import ResetCode, ResetRequest, User

log = logging.getLogger(__name__)


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
