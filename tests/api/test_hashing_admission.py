"""Hashing never holds a request thread (issue 9): the routes await the hashing pool
through its bounded queue. With every hash slot busy and the queue full, a login is
refused at once (429 + Retry-After) while cheap requests still answer, and no anyio
worker thread (the capacity every cheap request needs) is held by a hash.

Mechanisms, not timings: the hasher is held on an Event until the test releases it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from relatch.core.errors import RateLimited
from relatch.infra.hashing_pool import BUSY, HashingPool
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from tests.helpers.app import Account
from tests.helpers.app import test_settings as make_settings
from tests.helpers.hashing import FAST, HeldHasher
from tests.helpers.notices import Mailbox
from tests.helpers.statements import recording

WORKERS, QUEUE = 2, 2


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback: an https issuer for the password grant.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


@pytest.fixture
def held(svc: Services) -> Iterator[HeldHasher]:
    """The app's pool, replaced by a small one whose hashes wait for the test."""
    hasher = HeldHasher()
    original = svc.pool
    svc.pool = HashingPool(FAST, WORKERS, QUEUE, hasher=hasher)
    hasher.held = False
    try:
        yield hasher
    finally:
        hasher.release.set()
        svc.pool.close()
        svc.pool = original


def threads_held(client: TestClient) -> int:
    """anyio worker threads borrowed right now, read on the app's event loop."""
    assert client.portal is not None
    return int(
        client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().borrowed_tokens)
    )


def login(client: TestClient, acct: Account) -> Any:
    return client.post("/v1/api-login", json={"username": acct.username, "password": acct.password})


def fill(
    svc: Services, client: TestClient, held: HeldHasher, threads: ThreadPoolExecutor, acct: Account
) -> list[Future[Any]]:
    """WORKERS + QUEUE logins admitted and waiting on held hashes."""
    held.hold()
    admitted = [threads.submit(login, client, acct) for _ in range(WORKERS + QUEUE)]
    held.wait_entered(WORKERS)
    while svc.pool.in_flight < WORKERS + QUEUE:
        assert not any(f.done() for f in admitted), [f.result().text for f in admitted if f.done()]
        time.sleep(0.005)
    return admitted


def test_saturated_pool_refuses_a_login_at_once_while_cheap_requests_answer(
    svc: Services, client: TestClient, make_account: Any, held: HeldHasher
) -> None:
    acct = make_account()
    jwt = login(client, acct).json()["token"]
    with ThreadPoolExecutor(WORKERS + QUEUE + 2) as threads:
        admitted = fill(svc, client, held, threads, acct)
        # Every hash slot busy, the queue full: no request thread is held by them.
        assert threads_held(client) == 0
        # The next login: 429 at once (it would hang until release if it queued).
        refused = threads.submit(login, client, acct).result(timeout=10)
        assert refused.status_code == 429
        assert refused.json() == {"success": False, "error": refused.json()["error"]}
        assert int(refused.headers["Retry-After"]) >= 1
        # Cheap requests meanwhile: answered, on threads no hash holds (they would hang
        # until release if the hashes held the threads they need).
        me = threads.submit(client.get, "/v1/api/user", headers={"x-jwt-token": jwt})
        asked = threads.submit(
            client.post, "/v1/api-user-request-reset-password", json={"email": acct.email}
        )
        assert me.result(timeout=10).status_code == 200
        assert me.result().json()["email"] == acct.email
        assert asked.result(timeout=10).status_code == 200
        assert asked.result().json() == {"success": True}
        assert threads_held(client) == 0
        assert not any(f.done() for f in admitted)
        held.release.set()
        # The admitted ones were queued, not refused: each gets its session.
        for f in admitted:
            done = f.result(timeout=30)
            assert done.status_code == 200 and done.json()["success"] is True, done.text
    assert svc.pool.in_flight == 0


def test_the_queue_bound_holds_exactly(
    svc: Services, client: TestClient, make_account: Any, held: HeldHasher
) -> None:
    """WORKERS + QUEUE admitted (they all end in 200), the next refused; room again after."""
    acct = make_account()
    with ThreadPoolExecutor(WORKERS + QUEUE + 1) as threads:
        admitted = fill(svc, client, held, threads, acct)
        assert svc.pool.in_flight == WORKERS + QUEUE
        assert login(client, acct).status_code == 429
        held.release.set()
        assert [f.result(timeout=30).status_code for f in admitted] == [200] * len(admitted)
    assert login(client, acct).status_code == 200


def test_a_refused_login_touches_no_table(
    svc: Services, client: TestClient, make_account: Any, held: HeldHasher
) -> None:
    """Overload: past the bound a login is refused before its look-ups and its failure
    slot, and writes no audit row (an overload, not an attempt: nothing was checked), so
    a flood of refused logins costs the core no database work, and the owner's failure
    budget is untouched by attempts that guessed nothing."""
    acct = make_account()
    with ThreadPoolExecutor(WORKERS + QUEUE + 1) as threads:
        try:
            admitted = fill(svc, client, held, threads, acct)
            with recording(svc.engine) as recorded:
                refused = login(client, acct)
        finally:
            held.release.set()
        assert refused.status_code == 429
        assert refused.json() == {"success": False, "error": BUSY}
        assert recorded.statements == []
        assert [f.result(timeout=30).status_code for f in admitted] == [200] * len(admitted)


def test_signup_reset_and_change_are_refused_too_when_the_pool_is_full(
    svc: Services, client: TestClient, make_account: Any, mailbox: Mailbox, held: HeldHasher
) -> None:
    """Every route that hashes goes through the same admission, none around it; and a
    refusal spends nothing: the code and the password still work afterwards."""
    acct = make_account()
    jwt = login(client, acct).json()["token"]
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    new = {
        "name": "N",
        "username": "newcomer",
        "email": "newcomer@example.com",
        "privacyPolicy": True,
        "password": "a long enough passphrase",
    }
    reset = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    change = {"currentPassword": acct.password, "newPassword": "another long passphrase"}
    with ThreadPoolExecutor(WORKERS + QUEUE + 1) as threads:
        admitted = fill(svc, client, held, threads, acct)
        calls = [
            lambda: client.post("/v1/api-user-create", json=new),
            lambda: client.post("/v1/api-user-reset-password", json=reset),
            lambda: client.post(
                "/v1/api/user/change-password", json=change, headers={"x-jwt-token": jwt}
            ),
        ]
        for call in calls:
            refused = threads.submit(call).result(timeout=10)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
        held.release.set()
        for f in admitted:
            assert f.result(timeout=30).status_code == 200
    held.held = False
    assert client.post("/v1/api-user-reset-password", json=reset).json() == {"success": True}


def test_the_password_grant_holds_no_thread_while_its_password_is_verified(
    svc: Services, client: TestClient, make_account: Any, held: HeldHasher
) -> None:
    """The OAuth password grant runs in Authlib's synchronous code; its argon2 verify is
    awaited in the route before (oauth/grants.py check_password_first)."""
    acct = make_account()
    app = store.create_client(
        svc, "App", ["https://app.example/cb"], ["password"], ["openid"], False
    )
    assert app.client_secret is not None
    form = {"grant_type": "password", "username": acct.username, "password": acct.password}
    held.hold()
    with ThreadPoolExecutor(1) as threads:
        pending = threads.submit(
            client.post, "/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret)
        )
        held.wait_entered(1)
        assert threads_held(client) == 0
        held.release.set()
        granted = pending.result(timeout=30)
    assert granted.status_code == 200 and granted.json()["access_token"], granted.text


class RefusingHashes:
    """The service's own pool, but every new hash refused as a full pool refuses it: the
    policy's verify gets in, the hash after it finds no room. The real pool admits that
    hash as a follow-up; a reset is still refused there when its hash is its first (an
    account without a password) or by any other refusal, and must then keep its try."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    async def hash(self, password: str, *, follow_up: bool = False) -> str:
        raise RateLimited(1, "The server is busy, try again in a moment")


def test_a_reset_whose_hash_finds_the_pool_full_keeps_its_codes_try(
    svc: Services, client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    """Owner side: a flood that fills the pool between the policy's verify and the new
    hash must not burn the owner's code (5 tries): each such reset answers 429 and gives
    its try back, and the code still resets once the server has room."""
    acct = make_account()
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    real = svc.pool
    svc.pool = RefusingHashes(real)
    try:
        for _ in range(7):  # more than the code's 5 tries
            refused = client.post("/v1/api-user-reset-password", json=body)
            assert refused.status_code == 429, refused.text
    finally:
        svc.pool = real
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
