"""Retention (issue 10): the workers prune every table with expiring rows, on a schedule, in
bounded batches; expired rows go after their grace or retention period, live rows never."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from relatch import workers
from relatch.mail.transports import MailDirTransport
from relatch.services.context import Services
from relatch.storage.db import delete_in_batches, transaction
from relatch.storage.models import ActivationCode, OutboxMessage, ResetCode, ResetRequest, User
from relatch.storage.models_audit import NotMeLink
from relatch.storage.models_clients import KnownClient
from relatch.storage.models_oauth import OAuthClient, OAuthCode, OAuthToken
from relatch.storage.models_sessions import SignInSession
from tests.conftest import FakeClock

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
FAR = timedelta(days=30)  # "live": past every time the test visits

# A row of the table whose retention clock runs from `at` (an expiry, a delivery, a failure).
Plant = Callable[[Session, int, datetime], Any]


def _reset_code(s: Session, user: int, at: datetime) -> None:
    s.add(ResetCode(user_id=user, digest="d" * 64, created_at=at - MINUTE, expires_at=at))


def _activation_code(s: Session, user: int, at: datetime) -> None:
    s.add(ActivationCode(user_id=user, digest="d" * 64, created_at=at - MINUTE, expires_at=at))


def _not_me(s: Session, user: int, at: datetime) -> None:
    s.add(NotMeLink(user_id=user, digest="d" * 64, created_at=at - MINUTE, expires_at=at))


def _oauth_code(s: Session, user: int, at: datetime) -> None:
    s.add(
        OAuthCode(
            digest=f"{at.timestamp():064.0f}",
            client_id="client",
            user_id=user,
            generation=0,
            redirect_uri="https://client.test/cb",
            scope="openid",
            nonce="n",
            auth_time=0,
            created_at=at - MINUTE,
            expires_at=at,
        )
    )


def _oauth_token(s: Session, user: int, at: datetime) -> None:
    # Access and refresh token both expire at `at` (the access token of a live one may
    # have expired long before: see test_token_with_live_refresh_is_kept).
    s.add(_token(user, f"{at.timestamp():064.0f}", access=at, refresh=at))


def _token(user: int | None, digest: str, access: datetime, refresh: datetime | None) -> OAuthToken:
    return OAuthToken(
        access_digest=digest,
        refresh_digest=digest if refresh is not None else None,
        client_id="client",
        user_id=user,
        generation=0,
        grant_type="authorization_code",
        scope="openid",
        issued_at=access - MINUTE,
        access_expires_at=access,
        refresh_expires_at=refresh,
    )


def _delivered(s: Session, user: int, at: datetime) -> None:
    s.add(_mail("sent", created=at - MINUTE, sent=at))


def _mail(status: str, created: datetime, sent: datetime | None = None) -> OutboxMessage:
    return OutboxMessage(
        template="reset",
        recipient="owner@example.com",
        subject="s",
        body_text="",
        body_html="",
        status=status,
        attempts=0,
        created_at=created,
        next_attempt_at=created,
        sent_at=sent,
    )


def _dead_letter(s: Session, user: int, at: datetime) -> None:
    s.add(ResetRequest(email="typed@example.com", requested_at=at - MINUTE, failed_at=at))


def _known_client(s: Session, user: int, at: datetime) -> None:
    digest = f"{at.timestamp():064.0f}"
    s.add(
        KnownClient(
            user_id=user,
            kind="device",
            digest=digest,
            created_at=at,
            last_seen_at=at,
            expires_at=at,
        )
    )


def _session(s: Session, user: int, at: datetime) -> None:
    s.add(
        SignInSession(
            public_id=f"{at.timestamp():032.0f}",
            user_id=user,
            generation=0,
            created_at=at - DAY,
            last_seen_at=at - DAY,
            expires_at=at,
        )
    )


@dataclass(frozen=True)
class Table:
    model: type[Any]
    plant: Plant
    grace: Callable[[Services], timedelta]  # how long past `at` a row is kept


OUTBOX_DAYS = 7  # the default of RELATCH_OUTBOX_RETENTION_DAYS
TABLES = {
    "reset_codes": Table(ResetCode, _reset_code, lambda svc: workers.EXPIRED_GRACE),
    "activation_codes": Table(ActivationCode, _activation_code, lambda svc: workers.EXPIRED_GRACE),
    "not_me_links": Table(NotMeLink, _not_me, lambda svc: workers.EXPIRED_GRACE),
    "oauth_codes": Table(OAuthCode, _oauth_code, lambda svc: workers.EXPIRED_GRACE),
    "oauth_tokens": Table(OAuthToken, _oauth_token, lambda svc: workers.EXPIRED_GRACE),
    "outbox": Table(
        OutboxMessage, _delivered, lambda svc: timedelta(days=svc.settings.outbox_retention_days)
    ),
    "reset_requests": Table(
        ResetRequest, _dead_letter, lambda svc: timedelta(days=svc.settings.outbox_retention_days)
    ),
    "known_clients": Table(KnownClient, _known_client, lambda svc: timedelta(0)),
    "sessions": Table(SignInSession, _session, lambda svc: timedelta(0)),
}


def _seed_owner(svc: Services) -> int:
    now = svc.clock()
    with transaction(svc.sessions) as s:
        user = User(
            email="owner@example.com",
            email_key="owner@example.com",
            username="owner",
            username_key="owner",
            name="Owner",
            created_at=now,
        )
        s.add(user)
        s.add(
            OAuthClient(
                client_id="client",
                name="Client",
                redirect_uris="https://client.test/cb",
                grant_types="authorization_code",
                scopes="openid",
                created_at=now,
            )
        )
        s.flush()
        return int(user.id)


def _count(svc: Services, model: type[Any]) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _prune_pass(svc: Services, tmp_path: Path) -> None:
    """One pass of the request worker (its upkeep included), as `relatch serve` runs it:
    a fresh process state, so the throttle lets every prune run."""
    worker = workers.Workers(svc, MailDirTransport(tmp_path / "out"))
    anyio.run(worker.requests_pass)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_shrinks_by_its_expired_rows(
    svc: Services, clock: FakeClock, tmp_path: Path, name: str
) -> None:
    table = TABLES[name]
    grace = table.grace(svc)
    t0 = clock.now
    user = _seed_owner(svc)
    with transaction(svc.sessions) as s:
        table.plant(s, user, t0 + FAR)  # live
        # Just expired (a day ago for a grace of a day, and still kept); for a table
        # without grace (known clients), about to expire.
        table.plant(s, user, t0 - grace + 2 * MINUTE)
        for hours in (1, 2, 3):  # long expired: past the grace period already
            table.plant(s, user, t0 - grace - timedelta(hours=hours))
    assert _count(svc, table.model) == 5

    _prune_pass(svc, tmp_path)
    assert _count(svc, table.model) == 2  # the long-expired rows went

    clock.now = t0 + MINUTE  # the just-expired row is still within its grace period
    _prune_pass(svc, tmp_path)
    assert _count(svc, table.model) == 2

    clock.now = t0 + 3 * MINUTE  # ...and now past it
    _prune_pass(svc, tmp_path)
    assert _count(svc, table.model) == 1  # only the live row stays (the owner's side)


def test_live_rows_of_the_owner_are_never_pruned(
    svc: Services, clock: FakeClock, tmp_path: Path
) -> None:
    """A live reset code, an unsent or abandoned mail, a valid refresh token, a request
    waiting its retry: none goes, however old the row itself is."""
    t0 = clock.now
    old = t0 - timedelta(days=400)
    user = _seed_owner(svc)
    with transaction(svc.sessions) as s:
        s.add(ResetCode(user_id=user, digest="d" * 64, created_at=old, expires_at=t0 + FAR))
        s.add(_mail("pending", created=old))
        s.add(_mail("sending", created=old))
        s.add(_mail("abandoned", created=old))
        # Access token long expired, refresh token still valid (and a revoked, rotated one:
        # its replay is a theft signal while it could still have been valid).
        s.add(_token(user, "a" * 64, access=old, refresh=t0 + FAR))
        rotated = _token(user, "b" * 64, access=old, refresh=t0 + FAR)
        rotated.revoked_at, rotated.rotated = old, True
        s.add(rotated)
        s.add(ResetRequest(email="typed@example.com", requested_at=old, next_attempt_at=t0 + FAR))
    clock.now = t0 + timedelta(days=OUTBOX_DAYS + 2)
    _prune_pass(svc, tmp_path)
    assert _count(svc, ResetCode) == 1
    assert _count(svc, OutboxMessage) == 3
    assert _count(svc, OAuthToken) == 2
    assert _count(svc, ResetRequest) == 1


def test_pruning_a_code_keeps_the_tokens_it_gave(
    svc: Services, clock: FakeClock, tmp_path: Path
) -> None:
    """An OAuth code past its grace goes; a live token from it stays (its link is cleared)."""
    t0 = clock.now
    user = _seed_owner(svc)
    with transaction(svc.sessions) as s:
        _oauth_code(s, user, t0 - 2 * DAY)
        s.flush()
        code_id = s.scalar(select(OAuthCode.id))
        token = _token(user, "c" * 64, access=t0 + FAR, refresh=t0 + FAR)
        token.code_id = code_id
        s.add(token)
    _prune_pass(svc, tmp_path)
    assert _count(svc, OAuthCode) == 0
    with svc.sessions() as s:
        assert s.scalar(select(OAuthToken.code_id)) is None


def test_prunes_run_on_a_schedule(svc: Services, clock: FakeClock, tmp_path: Path) -> None:
    """One worker prunes at most once per RETENTION_EVERY; the next pass after it does."""
    t0 = clock.now
    user = _seed_owner(svc)
    worker = workers.Workers(svc, MailDirTransport(tmp_path / "out"))
    anyio.run(worker.requests_pass)
    with transaction(svc.sessions) as s:
        _reset_code(s, user, t0 - 2 * DAY)
    clock.now = t0 + workers.RETENTION_EVERY - MINUTE
    anyio.run(worker.requests_pass)
    assert _count(svc, ResetCode) == 1
    clock.now = t0 + workers.RETENTION_EVERY
    anyio.run(worker.requests_pass)
    assert _count(svc, ResetCode) == 0


def test_delete_in_batches_is_bounded(svc: Services, clock: FakeClock) -> None:
    """A backlog goes a batch per transaction, and at most max_batches of them per pass."""
    user = _seed_owner(svc)
    with transaction(svc.sessions) as s:
        for _ in range(5):
            _reset_code(s, user, clock.now - 2 * DAY)
    where = ResetCode.expires_at < clock.now
    assert delete_in_batches(svc.sessions, ResetCode, where, batch=2, max_batches=1) == 2
    assert _count(svc, ResetCode) == 3
    assert delete_in_batches(svc.sessions, ResetCode, where, batch=2) == 3
    assert _count(svc, ResetCode) == 0


INDEXED = {
    # table: the columns each lookup of the prunes (and the OAuth nonce check) leads with
    "reset_codes": ["expires_at"],
    "activation_codes": ["expires_at"],
    "not_me_links": ["expires_at"],
    "oauth_codes": ["expires_at", "client_id"],
    "oauth_tokens": ["access_expires_at"],
    "outbox": ["status"],
    "reset_requests": ["failed_at"],
    "known_clients": ["expires_at"],
    "sessions": ["expires_at"],
}


def test_every_prune_lookup_has_an_index(svc: Services) -> None:
    """After the migrations: an index leads with each column a prune or the nonce check
    looks rows up by (no full scan of a big table on each pass)."""
    found = inspect(svc.engine)
    for table, columns in INDEXED.items():
        leading = {ix["column_names"][0] for ix in found.get_indexes(table)}
        assert set(columns) <= leading, table
    nonce = [ix["column_names"] for ix in found.get_indexes("oauth_codes")]
    assert ["client_id", "nonce"] in nonce
