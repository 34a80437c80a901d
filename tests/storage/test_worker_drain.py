"""The workers drain a backlog in one pass, on SQLite and PostgreSQL (issue 12).

Owner's side: 3,200 reset mails used to trickle out at 20 per poll while the CPU idled, and
reset requests at 50 per poll. Now a pass claims batch after batch until nothing is due, so
one call of each worker step leaves no work behind. Mechanisms, not timings (the rates are
measured by `make bench`).

Two processes on PostgreSQL: a claim skips the rows another worker holds locked
(`FOR UPDATE SKIP LOCKED`) instead of queueing behind its transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from sqlalchemy import Connection, func, insert, select

from relatch.mail import worker
from relatch.mail.compose import Mail
from relatch.mail.transports import MailDirTransport, list_messages
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.storage import accounts
from relatch.storage.db import transaction
from relatch.storage.models import OutboxMessage, ResetRequest
from relatch.workers import Workers

BACKLOG = 1000
T = TypeVar("T")


def queue_mails(svc: Services, count: int) -> None:
    now = svc.clock()
    rows = [
        {
            "template": "reset_code",
            "recipient": f"backlog{n}@example.com",
            "subject": f"Mail {n}",
            "body_text": f"Body {n}\n",
            "body_html": f"<p>Body {n}</p>",
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for n in range(count)
    ]
    with transaction(svc.sessions) as s:
        s.execute(insert(OutboxMessage), rows)


def record_requests(svc: Services, emails: list[str]) -> None:
    now = svc.clock()
    with transaction(svc.sessions) as s:
        s.execute(insert(ResetRequest), [{"email": e, "requested_at": now} for e in emails])


def count(svc: Services, stmt: Any) -> int:
    with svc.sessions() as s:
        return int(s.scalar(stmt) or 0)


def statuses(svc: Services) -> dict[str, int]:
    with svc.sessions() as s:
        rows = s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        return {status: n for status, n in rows}


def test_a_backlog_of_1000_mails_drains_in_one_pass(svc: Services, tmp_path: Path) -> None:
    queue_mails(svc, BACKLOG)
    out = tmp_path / "out"

    anyio.run(Workers(svc, MailDirTransport(out)).mail_pass)

    assert statuses(svc) == {"sent": BACKLOG}
    assert len(list_messages(out)) == BACKLOG
    # Ten claim batches at least: the pass went on after the first, with no poll between.
    assert BACKLOG > 5 * worker.CLAIM_BATCH


def add_accounts(svc: Services, count: int) -> list[str]:
    emails = [f"known{n}@example.com" for n in range(count)]
    with transaction(svc.sessions) as s:
        for n, email in enumerate(emails):
            accounts.add(
                s,
                email=email,
                username=f"known{n}",
                name=f"Known {n}",
                password_hash=None,
                now=svc.clock(),
                job_title=None,
                company_name=None,
            )
    return emails


def test_a_backlog_of_1000_reset_requests_drains_in_one_pass(svc: Services) -> None:
    known = add_accounts(svc, BACKLOG // 2)
    unknown = [f"stranger{n}@example.com" for n in range(BACKLOG // 2)]
    record_requests(svc, [e for pair in zip(known, unknown, strict=True) for e in pair])

    anyio.run(Workers(svc, MailDirTransport(svc.settings.mail_dir)).requests_pass)

    assert count(svc, select(func.count()).select_from(ResetRequest)) == 0
    with svc.sessions() as s:
        queued = set(s.scalars(select(OutboxMessage.recipient)))
    assert queued == set(known)  # a code for each account, nothing for the strangers


@pytest.fixture
def pg_only(db_kind: str) -> None:
    if db_kind != "postgresql":
        pytest.skip("row locks between processes: PostgreSQL (SQLite has one writer)")


@contextmanager
def held_by_another_process(svc: Services, model: Any, ids: list[int]) -> Iterator[Connection]:
    """Another worker's open transaction, holding row locks on `ids`."""
    with svc.engine.connect() as other, other.begin():
        locked = other.execute(select(model.id).where(model.id.in_(ids)).with_for_update())
        assert len(locked.all()) == len(ids)
        yield other


def without_waiting(call: Callable[[], T]) -> T:
    """`call`, which must not wait for the other transaction's locks (it would hang until
    that one ends: the old claim queued behind it)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=10)


@pytest.mark.usefixtures("pg_only")
def test_a_mail_claim_skips_rows_another_worker_holds(svc: Services) -> None:
    queue_mails(svc, 6)
    with svc.sessions() as s:
        ids = list(s.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    with held_by_another_process(svc, OutboxMessage, ids[:2]):
        claimed = without_waiting(lambda: worker.claim_due(svc))
    assert [c.id for c in claimed] == ids[2:]
    # The two skipped are untouched, due for the next claim (the other worker's ended).
    assert [c.id for c in worker.claim_due(svc)] == ids[:2]


@pytest.mark.usefixtures("pg_only")
def test_a_reset_request_claim_skips_requests_another_worker_holds(svc: Services) -> None:
    record_requests(svc, [f"stranger{n}@example.com" for n in range(4)])
    with svc.sessions() as s:
        ids = list(s.scalars(select(ResetRequest.id).order_by(ResetRequest.id)))
    with held_by_another_process(svc, ResetRequest, ids[:1]):
        taken = without_waiting(lambda: reset_requests.process_requests(svc))
    assert taken == 3
    with svc.sessions() as s:
        assert list(s.scalars(select(ResetRequest.id))) == ids[:1]


def test_a_pass_goes_on_claiming_after_mails_backed_off(svc: Services, tmp_path: Path) -> None:
    """The loop ends: a mail that failed is backed off, not claimed again in the pass."""

    class Refusing:
        tried: list[str] = []  # noqa: RUF012

        async def send(self, message: Mail) -> None:
            self.tried.append(message.recipient)
            raise ConnectionError("relay down")

    queue_mails(svc, 3)
    relay = Refusing()
    assert anyio.run(worker.deliver_due, svc, relay) == 0
    assert len(relay.tried) == 3  # each tried once in the pass, then left for its backoff
    with svc.sessions() as s:
        rows = list(s.scalars(select(OutboxMessage)))
    assert {(r.status, r.attempts) for r in rows} == {("pending", 1)}
    assert all(r.next_attempt_at >= svc.clock() + timedelta(seconds=5) for r in rows)
