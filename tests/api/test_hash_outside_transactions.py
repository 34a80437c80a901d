"""No database connection is held while argon2 runs (issue 10, SQLite under concurrency):
a hash takes milliseconds to tens of milliseconds, and a transaction held over it would
hold SQLite's one write lock (every writer waiting) or a pooled connection meanwhile.

Each use case that hashes is run once; the hasher looks, as each hash starts, at how many
of the engine's connections are checked out (none may be: the requests run one at a time
and the workers are off).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.core.hashing import Hasher
from relatch.infra.hashing_pool import HashingPool
from relatch.services.context import Services
from tests.conftest import Account, Mailbox
from tests.helpers.api import login, post, request_code
from tests.helpers.hashing import FAST

NEW, NEWER = "amber kettle on the moor", "copper kettle on the fell"


class WatchingHasher(Hasher):
    """argon2 that notes the connections checked out when each hash starts."""

    def __init__(self, svc: Services) -> None:
        super().__init__(FAST)
        self.svc = svc
        self.seen: list[tuple[str, int]] = []

    def _note(self, what: str) -> None:
        self.seen.append((what, self.svc.engine.pool.checkedout()))  # type: ignore[attr-defined]

    def hash(self, password: str) -> str:
        self._note("hash")
        return super().hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        self._note("verify")
        return super().verify(stored, password)


@pytest.fixture
def watching(svc: Services) -> Iterator[WatchingHasher]:
    hasher = WatchingHasher(svc)
    original = svc.pool
    svc.pool = HashingPool(FAST, 2, 8, hasher=hasher)
    try:
        yield hasher
    finally:
        svc.pool.close()
        svc.pool = original


def test_no_connection_is_held_while_hashing(
    client: TestClient, mailbox: Mailbox, make_account: Any, watching: WatchingHasher
) -> None:
    acct: Account = make_account()  # createUser: hash
    token = login(client, acct.username, acct.password)["token"]  # verify
    code = request_code(client, mailbox, acct.email)
    body = {"email": acct.email, "code": code, "newPassword": NEW}
    assert post(client, "api-user-reset-password", body) == {"success": True}  # verify, hash
    token = login(client, acct.username, NEW)["token"]
    changed = client.post(
        "/v1/api/user/change-password",
        json={"currentPassword": NEW, "newPassword": NEWER},
        headers={"x-jwt-token": token},
    )  # verify, hash
    assert changed.json() == {"success": True}, changed.text

    assert [what for what, _ in watching.seen] == [
        *["hash", "verify"],
        *["verify", "hash", "verify"],
        *["verify", "hash"],
    ]
    assert [held for _, held in watching.seen] == [0] * len(watching.seen), watching.seen
