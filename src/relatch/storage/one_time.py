"""One store for every single-use secret: reset codes, activation codes, TOTP recovery codes,
"not me" links, address-change codes and undo links, and OAuth authorization codes.

Each kind keeps its own table (the columns differ: a reset code has a revocation time and two
try counters, a recovery code never expires, an OAuth code is bound to a client); a
`OneTimeStore` names the columns of one table, and the rules live here once:

- live: not used, not revoked, not expired, and (where the kind counts tries) tries below the
  maximum for the counter in play. `live` below is the only place this is written.
- count a try BEFORE comparing (`count_try`): one conditional UPDATE that spends a try of
  every live candidate and returns them, committed before the caller compares, so parallel
  guesses can never exceed the budget (brute force).
- consume (`consume`): one conditional UPDATE on the live row; only the request that flips
  the used column gets row count 1 (replay: 20 parallel uses give one success).
- revoke (`revoke_live`): every live secret of an owner dies (a newer one, a new password).

The secrets themselves are never stored: `digest` is a keyed digest (core/keyed.py) and the
caller compares in constant time; this module only decides which rows are still usable.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    false,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from relatch.storage import db
from relatch.storage.db import delete_in_batches, rowcount, transaction
from relatch.storage.models import ActivationCode, MailedCode, ResetCode
from relatch.storage.models_audit import NotMeLink
from relatch.storage.models_auth import RecoveryCode
from relatch.storage.models_decoys import DECOY_SLOTS, TryDecoy
from relatch.storage.models_email import EmailChange, EmailUndoLink
from relatch.storage.models_oauth import OAuthCode

Column = InstrumentedAttribute[Any]

NO_SLOT = -1  # a decoy slot no row has

# Parameters of the prebuilt statements (`OneTimeStore._prebuilt`); named apart from every
# column, which SQLAlchemy would take for SET values.
_OWNER: BindParameter[int] = bindparam("b_owner")
_NOW: BindParameter[datetime] = bindparam("b_now")
_LIMIT: BindParameter[int] = bindparam("b_limit")
_DECOY_TRY = (
    update(TryDecoy)
    .where(TryDecoy.slot == bindparam("b_slot"))
    .values(attempts=TryDecoy.attempts + 1)
    .execution_options(synchronize_session=False)
)


def decoy_slot(key: str) -> int:
    """The decoy row standing in for the owner of `key` (an address key): the same one for
    the same address, as its code row would be. Not a secret (storage/models_decoys.py)."""
    return zlib.crc32(key.encode()) % DECOY_SLOTS


@dataclass(frozen=True)
class Tries:
    """A try counter of a kind and its budget (a reset code has two: strangers' and known
    clients' tries are counted apart, so strangers cannot use up the owner's)."""

    column: InstrumentedAttribute[int]
    limit: int


class Tried(list[tuple[int, str]]):
    """`count_try`'s candidates, (id, digest) each; `last_try`: the ids whose counter this
    try brought to its limit."""

    def __init__(self) -> None:
        super().__init__()
        self.last_try: list[int] = []


@dataclass(frozen=True)
class OneTimeStore:
    """The columns of one table of single-use secrets."""

    model: type[Any]
    owner: Column  # the account the secret belongs to
    digest: Column  # keyed digest of the secret (never the secret)
    used: Column  # set once, by the winning consume
    revoked: Column | None = None  # kinds without one are killed by marking them used
    expires: Column | None = None  # kinds without one live until used (recovery codes)

    @property
    def id(self) -> Column:
        column: Column = self.model.id
        return column

    def _not_expired(self, now: datetime | BindParameter[Any]) -> ColumnElement[bool]:
        return self.expires > now if self.expires is not None else true()

    def _not_revoked(self) -> ColumnElement[bool]:
        return self.revoked.is_(None) if self.revoked is not None else true()

    def live(self, now: datetime, tries: Tries | None = None) -> ColumnElement[bool]:
        """THE liveness predicate of every single-use secret (the only copy).

        Expiry is strict (`expires > now`): a secret is dead at its expiry instant.
        `tries` only where the caller is about to spend one: consuming and revoking ignore
        the count (see `consume`), and a reset code out of strangers' tries is still live
        for the owner's known clients, whose tries are counted in the other column.
        """
        return self._live(now, tries.column if tries else None, tries.limit if tries else 0)

    def _live(
        self, now: datetime | BindParameter[Any], column: Column | None = None, limit: Any = 0
    ) -> ColumnElement[bool]:
        """`live`, with `now` and `limit` as values or as parameters (`_prebuilt`)."""
        live = and_(self.used.is_(None), self._not_revoked(), self._not_expired(now))
        return live if column is None else and_(live, column < limit)

    # The statements of the hot paths (a reset's try, its spent codes, its consume, the
    # revocations), built once per store and try column and run with parameters (issue 12:
    # building one cost more than running it, about 180 us, on every try and every reset).
    # With parameters, SQLAlchemy cannot tell which rows loaded in the caller's session
    # they change, so those objects keep their old values: no caller reads a secret's row
    # after changing it in the same session; one that must, refreshes it first.
    @functools.cached_property
    def _built(self) -> dict[str, Any]:
        return {}

    def _prebuilt(self, name: str, column: Column | None, build: Callable[[], Any]) -> Any:
        key = name if column is None else f"{name}:{column.key}"
        statement = self._built.get(key)
        if statement is None:
            statement = self._built[key] = build()
        return statement

    def live_candidates(self, s: Session, owner: int, now: datetime) -> list[tuple[int, str]]:
        """(id, digest) of the owner's live secrets, for a kind without a try counter (its
        secrets are few and single use, or too long to guess). The caller compares them all."""
        rows = s.execute(select(self.id, self.digest).where(self.owner == owner, self.live(now)))
        return [(int(row_id), str(digest)) for row_id, digest in rows]

    def find(self, s: Session, row_id: int, now: datetime) -> tuple[Any | None, bool]:
        """The row with this id (None if there is none) and whether it is live.

        The row comes back dead too: a caller may need to prove the secret of a used link
        (a reload is not a guess) or to do equal work for every failure (timing).
        """
        is_live = case((self.live(now), true()), else_=false())
        found = s.execute(select(self.model, is_live).where(self.id == row_id)).first()
        if found is None:
            return None, False
        return found[0], bool(found[1])

    def count_try(
        self,
        sessions: sessionmaker[Session],
        owner: int,
        now: datetime,
        tries: Tries,
        decoy_slot: int | None = None,
        *,
        within: Session | None = None,
    ) -> Tried:
        """Spend one try of every live secret of the owner, COMMITTED before the caller
        compares; returns their (id, digest), and which of them this try brought to the
        limit (`Tried.last_try`: a wrong try there kills the secret; the metrics).

        Brute force: the try is counted in its own transaction, guarded by `tries < limit`
        in the same conditional UPDATE, so parallel guesses cannot exceed the budget, and a
        guess the caller later refuses has already paid (no rollback gives it back). A
        secret out of tries does not come back, so even the right secret fails then.

        Timing (`decoy_slot`, storage/models_decoys.py): when no live secret took the try,
        the decoy row of that slot takes it instead, in the same transaction. Both sides run
        the same two statements and write one row: the commit costs the same whether or not
        the owner (or a live code) exists.

        `within`: counted in the caller's write transaction instead, which must commit
        before the caller compares (the reset's one write before its compare, issue 12).
        """
        if within is not None:
            return self._count_try(within, owner, now, tries, decoy_slot)
        with transaction(sessions) as s:
            return self._count_try(s, owner, now, tries, decoy_slot)

    def _count_try(
        self, s: Session, owner: int, now: datetime, tries: Tries, decoy_slot: int | None
    ) -> Tried:
        column = tries.column
        statement = self._prebuilt(
            "count_try",
            column,
            lambda: (
                update(self.model)
                .where(self.owner == _OWNER, self._live(_NOW, column, _LIMIT))
                .values({column: column + 1})
                .returning(self.id, self.digest, column)
            ),
        )
        rows = s.execute(statement, {"b_owner": owner, "b_now": now, "b_limit": tries.limit})
        tried = Tried()
        for row_id, digest, count in rows:
            tried.append((int(row_id), str(digest)))
            if count >= tries.limit:
                tried.last_try.append(int(row_id))
        if decoy_slot is not None:
            # The same statement either way; it matches no row when a secret counted.
            s.execute(_DECOY_TRY, {"b_slot": NO_SLOT if tried else decoy_slot})
        return tried

    def give_back_try(self, s: Session, row_id: int, tries: Tries) -> None:
        """A right secret shown without being used (a check): that try was no guess."""
        s.execute(
            update(self.model)
            .where(self.id == row_id, tries.column > 0)
            .values({tries.column: tries.column - 1})
        )

    def spent_digests(self, s: Session, owner: int, now: datetime, tries: Tries) -> list[str]:
        """Digests of the owner's secrets that are unexpired and unrevoked but used or out
        of tries: live but for the race a right guess may have lost (its caller decides
        whether the try was a guess). Never usable."""
        column = tries.column
        statement = self._prebuilt(
            "spent",
            column,
            lambda: select(self.digest).where(
                self.owner == _OWNER,
                self._not_revoked(),
                self._not_expired(_NOW),
                or_(self.used.is_not(None), column >= _LIMIT),
            ),
        )
        params = {"b_owner": owner, "b_now": now, "b_limit": tries.limit}
        return [str(d) for d in s.scalars(statement, params)]

    def consume(self, s: Session, row_id: int, now: datetime) -> bool:
        """Use the secret up, in the caller's transaction; False if it was not live.

        Replay: one conditional UPDATE; only the request that flips the used column gets
        row count 1, so of 20 parallel uses exactly one wins, and the losers must refuse.
        The try count is deliberately NOT re-checked here: the winner's try was already
        counted by `count_try` (and may have been the last one the budget allows), so
        re-checking `tries < limit` would refuse the very try that proved the secret.
        """
        statement = self._prebuilt(
            "consume",
            None,
            lambda: (
                update(self.model)
                .where(self.id == bindparam("b_id"), self._live(_NOW))
                .values({self.used: bindparam("b_used")})
            ),
        )
        done = rowcount(s.execute(statement, {"b_id": row_id, "b_now": now, "b_used": now}))
        return done == 1

    def revoke_live(self, s: Session, owner: int, now: datetime) -> int:
        """Every live secret of the owner dies, in the caller's transaction; how many.

        Used or expired rows keep their state (what was used stays used: an OAuth code's
        replay detection depends on it). A kind without a revocation column is killed by
        marking it used, which every reader already refuses.
        """
        return self.revoke_live_of(s, [owner], now)

    def revoke_live_of(self, s: Session, owners: Sequence[int], now: datetime) -> int:
        """`revoke_live` for several owners in one UPDATE (a worker's batch); how many."""
        killed = self.revoked if self.revoked is not None else self.used
        statement = self._prebuilt(
            "revoke_live_of",
            None,
            lambda: (
                update(self.model)
                .where(self.owner.in_(bindparam("b_owners", expanding=True)), self._live(_NOW))
                .values({killed: bindparam("b_killed")})
            ),
        )
        params = {"b_owners": list(owners), "b_now": now, "b_killed": now}
        return rowcount(s.execute(statement, params))

    def revoke_unused(self, s: Session, owner: int, now: datetime) -> int:
        """Every unused, unrevoked secret of the owner dies, expired or not, in the caller's
        transaction; how many. For a suspension (services/operator.py), which may run on
        another host than the server: a clock behind the server's must not leave a secret
        alive that it thinks expired."""
        killed = self.revoked if self.revoked is not None else self.used
        return rowcount(
            s.execute(
                update(self.model)
                .where(self.owner == owner, self.used.is_(None), self._not_revoked())
                .values({killed: now})
            )
        )

    def prune_expired(self, sessions: sessionmaker[Session], cutoff: datetime) -> int:
        """Delete the rows that expired before `cutoff` (retention, in bounded batches);
        how many. Used or not: a secret past its expiry is dead either way. A kind without
        an expiry (recovery codes) is kept: its rows die with the account or a new set.

        The caller sets `cutoff` a grace period before now (relatch/workers.py), never now:
        a late try of an expired secret must still find its row (equal work and an audit
        of "expired", not "unknown"; an OAuth code's replay still revokes its family)."""
        if self.expires is None:
            return 0
        return delete_in_batches(sessions, self.model, self.expires < cutoff)

    def prune_expired_unused(
        self, sessions: sessionmaker[Session], cutoff: datetime, tries: Sequence[Tries]
    ) -> tuple[int, int]:
        """`prune_expired`, telling how many of the rows deleted had simply expired: never
        used nor revoked, and no try counter at its limit (the metrics' "expired").

        Counted from the DELETE's own RETURNING, so two processes pruning at once count
        each row once (the one whose DELETE removed it). (deleted, of which expired)."""
        assert self.expires is not None
        # The columns come back raw and are judged here: SQLite (3.40) answers a wrong
        # `consumed_at IS NULL` inside a DELETE's RETURNING on this table.
        columns = [self.used, *([self.revoked] if self.revoked is not None else [])]
        counters = [t.column for t in tries]
        deleted = expired = 0
        for _ in range(db.PRUNE_MAX_BATCHES):
            ids = select(self.id).where(self.expires < cutoff).order_by(self.id)
            with transaction(sessions) as s:
                rows = list(
                    s.execute(
                        delete(self.model)
                        .where(self.id.in_(ids.limit(db.PRUNE_BATCH)))
                        .returning(*columns, *counters)
                    )
                )
            for row in rows:
                marks, counts = row[: len(columns)], row[len(columns) :]
                unused = all(mark is None for mark in marks)
                if unused and all(n < t.limit for n, t in zip(counts, tries, strict=True)):
                    expired += 1
            deleted += len(rows)
            if len(rows) < db.PRUNE_BATCH:
                break
        return deleted, expired


def mailed_codes(model: type[MailedCode]) -> OneTimeStore:
    """The store of a code sent by mail and typed back (storage/models.py MailedCode)."""
    return OneTimeStore(
        model,
        owner=model.user_id,
        digest=model.digest,
        used=model.consumed_at,
        revoked=model.revoked_at,
        expires=model.expires_at,
    )


RESET_CODES = mailed_codes(ResetCode)
ACTIVATION_CODES = mailed_codes(ActivationCode)
RECOVERY_CODES = OneTimeStore(
    RecoveryCode, owner=RecoveryCode.user_id, digest=RecoveryCode.digest, used=RecoveryCode.used_at
)
NOT_ME_LINKS = OneTimeStore(
    NotMeLink,
    owner=NotMeLink.user_id,
    digest=NotMeLink.digest,
    used=NotMeLink.used_at,
    expires=NotMeLink.expires_at,
)
OAUTH_CODES = OneTimeStore(
    OAuthCode,
    owner=OAuthCode.user_id,
    digest=OAuthCode.digest,
    used=OAuthCode.consumed_at,
    expires=OAuthCode.expires_at,
)
EMAIL_CHANGES = mailed_codes(EmailChange)
EMAIL_UNDO_LINKS = OneTimeStore(
    EmailUndoLink,
    owner=EmailUndoLink.user_id,
    digest=EmailUndoLink.digest,
    used=EmailUndoLink.used_at,
    expires=EmailUndoLink.expires_at,
)
