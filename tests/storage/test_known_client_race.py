"""One notice per new client under contention: of two transactions remembering the same
new client at once, exactly one sees it as new (services/known_clients.remember)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from relatch.core.meta import RequestMeta
from relatch.services import known_clients
from relatch.services.context import Services
from relatch.storage.models import User

META = RequestMeta(client_ip="198.18.5.5")


def test_two_interleaved_sign_ins_see_the_client_new_once(
    svc: Services, db_kind: str, make_account: Any
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SQLite serialises write transactions: they cannot interleave")
    acct = make_account()
    now = svc.clock()
    first = svc.sessions()
    second = svc.sessions()
    try:
        user = first.get(User, acct.id)
        assert user is not None
        # The first inserts and holds its transaction open...
        assert known_clients.remember(svc, first, user, META, now) == {"network"}
        started = threading.Event()

        def other() -> set[str]:
            started.set()
            # ...the second's insert waits on the first's row lock, then finds the row.
            return known_clients.remember(svc, second, user, META, now)

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(other)
            started.wait()
            time.sleep(0.3)  # the second is blocked on the row by now
            assert not pending.done()
            first.commit()
            assert pending.result(timeout=10) == set()
        second.commit()
    finally:
        first.close()
        second.close()
    # And afterwards, one more sign-in from it is known too.
    with svc.sessions() as s:
        row = s.get(User, acct.id)
        assert row is not None
        assert known_clients.remember(svc, s, row, META, svc.clock()) == set()
        s.rollback()
