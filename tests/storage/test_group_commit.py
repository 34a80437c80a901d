"""The group commit (storage/group_commit.py), on SQLite and PostgreSQL: many callers'
writes in one transaction, each caller answered once its own writes are committed; one
failing item fails alone; the queue is bounded. No clock: what is checked is which rows
are committed when each caller gets its answer, and how many transactions ran."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from relatch.core.errors import RateLimited
from relatch.services.context import Services
from relatch.storage.group_commit import GroupCommit
from relatch.storage.models import ResetRequest
from tests.helpers.statements import counted


def broken(s: Session) -> int:
    s.connection().execute(text("INSERT INTO no_such_table VALUES (1)"))
    return -1


def committed(svc: Services, request_id: str) -> bool:
    """Whether the row is visible to another connection: committed."""
    with svc.sessions() as s:
        found = s.scalar(select(func.count()).where(ResetRequest.request_id == request_id))
    return bool(found)


@pytest.fixture
def item(svc: Services) -> Callable[[int], Callable[[Session], int]]:
    """item(n): writes one reset-request row named by its request id, returns `n`."""

    def make(n: int) -> Callable[[Session], int]:
        def write(s: Session) -> int:
            s.connection().execute(
                insert(ResetRequest),
                {
                    "email": f"r{n}@example.com",
                    "requested_at": svc.clock(),
                    "request_id": f"item-{n}",
                },
            )
            return n

        return write

    return make


def test_many_callers_share_one_transaction_and_each_is_answered_after_its_commit(
    svc: Services, item: Callable[[int], Callable[[Session], int]]
) -> None:
    group = GroupCommit(svc.sessions)
    n = 20

    async def one(i: int) -> int:
        answer = await group.run(item(i))
        # Answered only now: the row must already be visible to another connection.
        assert committed(svc, f"item-{i}"), f"item {i} answered before its commit"
        return answer

    async def main() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(n)))

    with counted(svc.engine, "begin") as began:
        answers = asyncio.run(main())
    assert answers == list(range(n))
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ResetRequest)) == n
    # One transaction for the whole group (the reads above begin theirs on the engine too,
    # one per caller): fewer than one write transaction per caller.
    assert len(began) - n == 1


def test_one_failing_item_fails_alone(
    svc: Services, item: Callable[[int], Callable[[Session], int]]
) -> None:
    group = GroupCommit(svc.sessions)

    async def main() -> list[Any]:
        items = [item(0), item(1), broken]
        items += [item(2), item(3)]
        return await asyncio.gather(*(group.run(i) for i in items), return_exceptions=True)

    answers = asyncio.run(main())
    assert answers[:2] == [0, 1] and answers[3:] == [2, 3]
    assert isinstance(answers[2], Exception)
    for i in range(4):
        assert committed(svc, f"item-{i}")


def test_the_queue_is_bounded_and_refuses_at_once_with_429(
    svc: Services, item: Callable[[int], Callable[[Session], int]]
) -> None:
    group = GroupCommit(svc.sessions, max_queue=3)

    async def main() -> list[Any]:
        # Every caller queues before the drain task first runs (asyncio runs the tasks in
        # the order they were made): three fit, the other two are refused.
        calls = [group.run(item(i)) for i in range(5)]
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(main())
    assert answers[:3] == [0, 1, 2]
    for refused in answers[3:]:
        assert isinstance(refused, RateLimited) and refused.retry_after >= 1
    assert not committed(svc, "item-3") and not committed(svc, "item-4")
    # Room again once the queue drained.
    assert asyncio.run(group.run(item(5))) == 5


def test_a_batch_is_never_larger_than_max_batch(
    svc: Services, item: Callable[[int], Callable[[Session], int]]
) -> None:
    group = GroupCommit(svc.sessions, max_batch=4)

    async def main() -> list[int]:
        return await asyncio.gather(*(group.run(item(i)) for i in range(10)))

    with counted(svc.engine, "begin") as began:
        assert asyncio.run(main()) == list(range(10))
    assert len(began) == 3  # 4 + 4 + 2
