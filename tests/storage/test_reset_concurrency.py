"""Single use under contention: 20 parallel resets with one code give exactly one success."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from sqlalchemy import select

from relatch.core.errors import CodeRejected
from relatch.core.meta import RequestMeta
from relatch.services import reset, reset_requests
from relatch.services.context import Services
from relatch.storage.models import ResetCode, User
from tests.conftest import Mailbox

PARALLEL = 20


def test_twenty_parallel_resets_one_success(
    svc: Services, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    reset_requests.request_reset(svc, acct.email, RequestMeta())
    code = mailbox.last_code(acct.email)
    barrier = threading.Barrier(PARALLEL)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            new = f"new password number {i}"
            anyio.run(reset.reset, svc, acct.email, code, new, RequestMeta())
        except CodeRejected:
            return "rejected"
        return "ok"

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(attempt, range(PARALLEL)))
    assert outcomes.count("ok") == 1
    assert outcomes.count("rejected") == PARALLEL - 1
    with svc.sessions() as s:
        user = s.scalars(select(User).where(User.id == acct.id)).one()
        codes = list(s.scalars(select(ResetCode).where(ResetCode.user_id == acct.id)))
    assert user.credential_generation == 1  # exactly one reset applied
    assert [c.consumed_at is not None for c in codes] == [True]


def test_parallel_wrong_guesses_never_exceed_the_budget(
    svc: Services, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    reset_requests.request_reset(svc, acct.email, RequestMeta())
    right = mailbox.last_code(acct.email)
    wrong = "0000-0000" if right != "0000-0000" else "1111-1111"
    barrier = threading.Barrier(PARALLEL)

    def guess(_: int) -> None:
        barrier.wait()
        with contextlib.suppress(CodeRejected):
            reset.verify(svc, acct.email, wrong, RequestMeta())

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(guess, range(PARALLEL)))
    with svc.sessions() as s:
        (code,) = s.scalars(select(ResetCode).where(ResetCode.user_id == acct.id))
    # Counted before comparing, guarded by attempts < max: never more than the budget.
    assert code.attempts == svc.settings.reset_code_max_attempts
    try:
        reset.verify(svc, acct.email, right, RequestMeta())
    except CodeRejected:
        pass
    else:
        raise AssertionError("an exhausted code must not verify")
