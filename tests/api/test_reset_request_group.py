"""Reset requests through the group commit (services/reset_requests.request_reset_grouped), on
SQLite and PostgreSQL: every request in a group is recorded and audited; the limits count
each request of a group, refuse past the limit exactly as alone, and a refusal leaves
nothing counted; known and unknown addresses get the same answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from relatch.core.errors import RateLimited
from relatch.core.meta import RequestMeta
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage.models import ResetRequest
from relatch.storage.models_audit import AuditEvent
from relatch.storage.models_limits import LimitCounter
from tests.conftest import test_settings as make_settings
from tests.helpers.statements import counted


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Per address: 3 in 15 minutes; per IP high enough not to interfere.
    return make_settings(
        tmp_path, db_url, limit_reset_per_address="3/15m", limit_reset_per_ip="100/1h"
    )


def ask_together(svc: Services, emails: list[str]) -> list[Any]:
    """One request per address, all queued before the group runs: one transaction."""
    meta = RequestMeta(client_ip="198.51.100.7", request_id="group")

    async def main() -> list[Any]:
        calls = [reset_requests.request_reset_grouped(svc, e, meta) for e in emails]
        return await asyncio.gather(*calls, return_exceptions=True)

    with counted(svc.engine, "begin") as began:
        answers = asyncio.run(main())
    assert len(began) == 1, f"{len(began)} transactions for one group"
    return answers


def audit_outcomes(svc: Services) -> list[str]:
    with svc.sessions() as s:
        return list(
            s.scalars(select(AuditEvent.outcome).where(AuditEvent.event == "reset_request"))
        )


def test_every_request_of_a_group_is_recorded(svc: Services) -> None:
    emails = [f"person{n}@example.com" for n in range(12)]
    assert ask_together(svc, emails) == [None] * 12
    with svc.sessions() as s:
        stored = sorted(s.scalars(select(ResetRequest.email)))
    assert stored == sorted(emails)
    assert audit_outcomes(svc) == ["recorded"] * 12


def test_the_limit_counts_each_request_of_a_group(svc: Services, make_account: Any) -> None:
    """Five requests for one address in one group, limit 3: three recorded, two refused
    (429 as alone), and the counter holds 3: the refused ones counted nothing. The same
    for an address with an account and one without (enumeration)."""
    known = make_account().email
    for email in (known, "nobody@example.com"):
        answers = ask_together(svc, [email] * 5)
        assert answers[:3] == [None] * 3
        assert all(isinstance(a, RateLimited) for a in answers[3:]), answers
        assert {a.retry_after for a in answers[3:]} == {15 * 60}  # the fixed clock's window
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ResetRequest)) == 6
        rows = s.execute(select(LimitCounter.window_seconds, LimitCounter.count)).all()
        counts = sorted((w, c) for w, c in rows)
    # One per-address counter each (at 3, not 5), the shared per-IP one (6, not 10), and
    # the account's sign-up.
    assert counts == [(900, 3), (900, 3), (3600, 1), (3600, 6)]
    assert sorted(audit_outcomes(svc)) == ["rate_limited"] * 4 + ["recorded"] * 6


def test_a_refused_request_does_not_fail_its_group(svc: Services) -> None:
    """Refusals and admissions mixed in one group: each answered on its own."""
    emails = ["a@example.com"] * 4 + ["b@example.com"] * 2
    answers = ask_together(svc, emails)
    assert answers[:3] == [None] * 3 and isinstance(answers[3], RateLimited)
    assert answers[4:] == [None, None]


def test_one_bad_request_in_a_group_fails_alone(svc: Services) -> None:
    """An item whose row the database refuses (a trigger on SQLite, a CHECK constraint on
    PostgreSQL) fails alone: the group is run again item by item, the others recorded."""
    poison = "poison@example.com"
    with svc.engine.begin() as conn:
        if svc.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON reset_requests "
                f"WHEN NEW.email = '{poison}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "ALTER TABLE reset_requests ADD CONSTRAINT refuse_poison "
                f"CHECK (email <> '{poison}')"
            )
    meta = RequestMeta(client_ip="198.51.100.7")

    async def main() -> list[Any]:
        emails = ["one@example.com", poison, "two@example.com", "three@example.com"]
        calls = [reset_requests.request_reset_grouped(svc, e, meta) for e in emails]
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(main())
    assert answers[0] is None and answers[2:] == [None, None]
    assert isinstance(answers[1], Exception) and not isinstance(answers[1], RateLimited)
    with svc.sessions() as s:
        stored = sorted(s.scalars(select(ResetRequest.email)))
    assert stored == ["one@example.com", "three@example.com", "two@example.com"]
    # The failed one leaves its "error" row in the trail, like a request alone.
    assert sorted(audit_outcomes(svc)) == ["error"] + ["recorded"] * 3
