"""What one sign-in writes (issue 12): a password sign-in without a second factor is two
short write transactions, the failure slot taken before the verify and one after it that
holds everything else (the slot given back, the known client renewed, the "ok" row, the
session record). Each commit costs a sign-in more CPU than the rest of its database work,
and the hash already takes the core: the fewer, the closer logins come to the bound.

Both sides still hold: the owner's known client keeps its renewed budget and its new
session (owner), and a second factor turned on is still asked for (attacker: no path
around it). Through HTTP behind a trusted proxy, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from relatch.storage.models_clients import KnownClient
from relatch.storage.models_sessions import SignInSession
from tests.conftest import DATABASES, FakeClock
from tests.helpers.lockout import (
    PASSWORD,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
)
from tests.helpers.statements import counted, recording
from tests.helpers.totp import enable
from tests.helpers.totp import token as totp_token

HOME = "192.0.2.10"
DAY = 86400


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_known_clients_sign_in_is_two_write_transactions(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, _ = d.create(HOME, 1)
    assert d.login(HOME, email).json()["success"] is True  # HOME is known from now on
    clock.advance(DAY)
    with counted(d.svc.engine, "commit") as done, recording(d.svc.engine) as recorded:
        resp = d.login(HOME, email)
    assert resp.json()["success"] is True
    assert len(done) == 2, recorded.shapes
    # The known client: one UPDATE renews it, nothing inserted, nothing deleted.
    assert recorded.writes_to("known_clients") == ["UPDATE"]
    assert recorded.writes_to("sessions") == ["INSERT"]
    assert recorded.writes_to("audit_events") == ["INSERT"]


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_the_renewal_moves_the_known_clients_expiry_and_the_session_is_recorded(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Owner side of the one write: the known client's 30 days start again at each sign-in
    and the new session is listed, both written with the "ok" row."""
    d = deploy()
    email, _ = d.create(HOME, 1)
    assert d.login(HOME, email).json()["success"] is True
    clock.advance(3600)  # within the first session's lifetime: both are listed
    token = d.login(HOME, email).json()["token"]
    with d.svc.sessions() as s:
        (expires,) = s.scalars(select(KnownClient.expires_at)).all()
    assert expires == clock.now + timedelta(days=d.svc.settings.known_client_days)
    listed = d.browser().get("/v1/api/user/sessions", headers={"x-jwt-token": token}).json()
    assert len(listed["sessions"]) == 2


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_second_factor_is_still_asked_and_the_password_alone_writes_no_session(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Attacker side: the one-write path reads the factor's absence in its own transaction;
    with a factor on, the password alone gets TOTP-required and no session, no known
    client, no "ok" row."""
    d = deploy()
    email, _ = d.create(HOME, 1)
    token = d.login(HOME, email).json()["token"]
    key, _ = enable(d.browser(), clock, {"x-jwt-token": token})
    with d.svc.sessions() as s:
        sessions_before = len(s.scalars(select(SignInSession.id)).all())
    clock.advance(DAY)
    with recording(d.svc.engine) as recorded:
        resp = d.login(HOME, email)
    assert resp.json()["success"] is False
    assert resp.json()["error"].startswith("ERR_TOTP_TOKEN IS REQUIRED")
    assert recorded.writes_to("sessions") == []
    assert recorded.writes_to("known_clients") == []
    with d.svc.sessions() as s:
        assert len(s.scalars(select(SignInSession.id)).all()) == sessions_before
    # With the token, the same sign-in completes and records its session.
    body = {"username": email, "password": PASSWORD, "totpToken": totp_token(clock, key)}
    assert d.api(HOME, "api-login", body).json()["success"] is True
    with d.svc.sessions() as s:
        assert len(s.scalars(select(SignInSession.id)).all()) == sessions_before + 1
