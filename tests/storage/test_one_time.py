"""The one-time-secret store's contract (storage/one_time.py), on SQLite and PostgreSQL, for
every kind that uses it: reset codes, activation codes, TOTP recovery codes, "not me" links,
OAuth codes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from relatch.services.context import Services
from relatch.storage import oauth_repo
from relatch.storage.db import transaction
from relatch.storage.models import ActivationCode, ResetCode
from relatch.storage.models_audit import NotMeLink
from relatch.storage.models_auth import RecoveryCode
from relatch.storage.models_oauth import OAuthCode
from relatch.storage.one_time import (
    ACTIVATION_CODES,
    NOT_ME_LINKS,
    OAUTH_CODES,
    RECOVERY_CODES,
    RESET_CODES,
    OneTimeStore,
    Tries,
)
from tests.conftest import FakeClock

PARALLEL = 20
TTL = timedelta(seconds=600)
Row = Callable[[Services, int, datetime], Any]
_serial = iter(range(1, 1_000_000))


def _reset_code(svc: Services, owner: int, now: datetime) -> Any:
    return ResetCode(
        user_id=owner, digest="a" * 64, created_at=now, expires_at=now + TTL, attempts=0
    )


def _activation_code(svc: Services, owner: int, now: datetime) -> Any:
    return ActivationCode(
        user_id=owner, digest="e" * 64, created_at=now, expires_at=now + TTL, attempts=0
    )


def _recovery_code(svc: Services, owner: int, now: datetime) -> Any:
    return RecoveryCode(user_id=owner, digest="b" * 64, created_at=now)


def _not_me_link(svc: Services, owner: int, now: datetime) -> Any:
    return NotMeLink(user_id=owner, digest="c" * 64, created_at=now, expires_at=now + TTL)


def _oauth_code(svc: Services, owner: int, now: datetime) -> Any:
    client = oauth_repo.create_client(
        svc, "App", ["https://app.example/cb"], ["authorization_code"], ["openid"], False
    )
    return OAuthCode(
        digest=f"{next(_serial):064d}",
        client_id=client.client_id,
        user_id=owner,
        generation=0,
        redirect_uri="https://app.example/cb",
        scope="openid",
        auth_time=0,
        created_at=now,
        expires_at=now + TTL,
    )


KINDS: dict[str, tuple[OneTimeStore, Row]] = {
    "reset_code": (RESET_CODES, _reset_code),
    "activation_code": (ACTIVATION_CODES, _activation_code),
    "recovery_code": (RECOVERY_CODES, _recovery_code),
    "not_me_link": (NOT_ME_LINKS, _not_me_link),
    "oauth_code": (OAUTH_CODES, _oauth_code),
}
EXPIRING = ["reset_code", "activation_code", "not_me_link", "oauth_code"]


def _add(svc: Services, kind: str, owner: int) -> int:
    make = KINDS[kind][1]
    row = make(svc, owner, svc.clock())
    with transaction(svc.sessions) as s:
        s.add(row)
        s.flush()
        return int(row.id)


def _tries(svc: Services) -> Tries:
    return Tries(ResetCode.attempts, svc.settings.reset_code_max_attempts)


@pytest.mark.parametrize("kind", list(KINDS))
def test_twenty_parallel_consumes_give_one_success(
    svc: Services, make_account: Any, kind: str
) -> None:
    store = KINDS[kind][0]
    row_id = _add(svc, kind, make_account().id)
    barrier = threading.Barrier(PARALLEL)

    def consume(_: int) -> bool:
        barrier.wait()
        with transaction(svc.sessions) as s:
            return store.consume(s, row_id, svc.clock())

    with ThreadPoolExecutor(PARALLEL) as pool:
        won = list(pool.map(consume, range(PARALLEL)))
    assert won.count(True) == 1
    with transaction(svc.sessions) as s:  # a later replay loses too
        assert store.consume(s, row_id, svc.clock()) is False


def test_try_is_committed_before_the_compare(svc: Services, make_account: Any) -> None:
    owner = make_account().id
    row_id = _add(svc, "reset_code", owner)
    candidates = RESET_CODES.count_try(svc.sessions, owner, svc.clock(), _tries(svc))
    assert candidates == [(row_id, "a" * 64)]
    # Nothing compared yet, and a caller that now fails (raises) cannot take the try back:
    # it is already committed, seen from another session.
    with svc.sessions() as s:
        assert s.get(ResetCode, row_id).attempts == 1  # type: ignore[union-attr]


def test_out_of_tries_gives_no_candidate_but_still_consumes(
    svc: Services, make_account: Any
) -> None:
    owner = make_account().id
    row_id = _add(svc, "reset_code", owner)
    limit = svc.settings.reset_code_max_attempts
    for _ in range(limit):
        assert RESET_CODES.count_try(svc.sessions, owner, svc.clock(), _tries(svc))
    # The budget is spent: no further try reaches the row, right secret or not.
    assert RESET_CODES.count_try(svc.sessions, owner, svc.clock(), _tries(svc)) == []
    with svc.sessions() as s:
        assert s.get(ResetCode, row_id).attempts == limit  # type: ignore[union-attr]
    # The other counter (clients known to the account) is its own budget.
    known = Tries(ResetCode.known_attempts, limit)
    assert RESET_CODES.count_try(svc.sessions, owner, svc.clock(), known) == [(row_id, "a" * 64)]
    # Consuming does not re-check the count: the last allowed try, already counted, wins.
    with transaction(svc.sessions) as s:
        assert RESET_CODES.consume(s, row_id, svc.clock()) is True


def test_parallel_tries_never_exceed_the_budget(svc: Services, make_account: Any) -> None:
    owner = make_account().id
    row_id = _add(svc, "reset_code", owner)
    barrier = threading.Barrier(PARALLEL)

    def spend(_: int) -> int:
        barrier.wait()
        return len(RESET_CODES.count_try(svc.sessions, owner, svc.clock(), _tries(svc)))

    with ThreadPoolExecutor(PARALLEL) as pool:
        got = sum(pool.map(spend, range(PARALLEL)))
    limit = svc.settings.reset_code_max_attempts
    assert got == limit
    with svc.sessions() as s:
        assert s.get(ResetCode, row_id).attempts == limit  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", list(KINDS))
def test_revoke_live_kills_only_live_rows(
    svc: Services, clock: FakeClock, make_account: Any, kind: str
) -> None:
    store = KINDS[kind][0]
    owner, other = make_account().id, make_account().id
    used = _add(svc, kind, owner)
    with transaction(svc.sessions) as s:
        assert store.consume(s, used, svc.clock())
    used_at = _state(svc, store, used)
    expired = _add(svc, kind, owner) if kind in EXPIRING else None
    clock.advance(TTL.total_seconds())
    live = _add(svc, kind, owner)
    others = _add(svc, kind, other)
    now = svc.clock()
    with transaction(svc.sessions) as s:
        assert store.revoke_live(s, owner, now) == 1
    with svc.sessions() as s:
        assert store.live_candidates(s, owner, now) == []
        assert [i for i, _ in store.live_candidates(s, other, now)] == [others]
    assert _state(svc, store, used) == used_at  # a used row keeps what it was
    if expired is not None:
        assert _state(svc, store, expired) == (None, None)
    with transaction(svc.sessions) as s:
        assert store.consume(s, live, now) is False  # revoked: dead for good


@pytest.mark.parametrize("kind", EXPIRING)
def test_expiry_boundary(svc: Services, clock: FakeClock, make_account: Any, kind: str) -> None:
    """Live one second before its TTL ends, dead at the TTL (strict `expires > now`, the
    rule every kind had before: test_reset_flow's 599 s / 600 s boundary)."""
    store = KINDS[kind][0]
    owner = make_account().id
    row_id = _add(svc, kind, owner)
    clock.advance(TTL.total_seconds() - 1)
    with svc.sessions() as s:
        assert store.find(s, row_id, svc.clock())[1] is True
        assert [i for i, _ in store.live_candidates(s, owner, svc.clock())] == [row_id]
    clock.advance(1)
    with svc.sessions() as s:
        row, live = store.find(s, row_id, svc.clock())
        assert row is not None and live is False  # the row comes back, dead
        assert store.live_candidates(s, owner, svc.clock()) == []
    with transaction(svc.sessions) as s:
        assert store.consume(s, row_id, svc.clock()) is False


def test_find_of_a_missing_row(svc: Services) -> None:
    with svc.sessions() as s:
        assert RESET_CODES.find(s, 123456, svc.clock()) == (None, False)


def _state(svc: Services, store: OneTimeStore, row_id: int) -> tuple[Any, Any]:
    """(used, revoked) of a row."""
    revoked = store.revoked if store.revoked is not None else store.used
    with svc.sessions() as s:
        found = s.execute(select(store.used, revoked).where(store.id == row_id)).one()
    return found[0], found[1] if store.revoked is not None else None
