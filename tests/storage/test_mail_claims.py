"""The mail worker's claims (storage/outbox_claims.py), on SQLite and PostgreSQL: a lease
per claim, renewed right before the send, and a token without which nothing is written.

Owner's side (issue 10): a mail left `sending` by a dead process goes out after its lease.
Attacker-free but just as real: a slow batch used to outlive the lease of its later mails,
another process took them over, and both sent them. Now the loser sends nothing it lost.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import anyio
import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from relatch.mail import worker
from relatch.mail.compose import Mail
from relatch.services.context import Services
from relatch.storage import migrate
from relatch.storage.models import OutboxMessage
from relatch.storage.outbox_claims import Claimed
from tests.api.test_poison_items import outbox_rows, plant
from tests.conftest import FakeClock


def lease(svc: Services) -> int:
    return svc.settings.mail_claim_seconds


def row(svc: Services, msg_id: int) -> OutboxMessage:
    with svc.sessions() as s:
        return s.scalars(select(OutboxMessage).where(OutboxMessage.id == msg_id)).one()


def test_each_claim_has_its_own_token_and_holds_for_exactly_the_lease(
    svc: Services, clock: FakeClock
) -> None:
    for n in range(3):
        plant(svc, f"user{n}@example.com", n)
    first = worker.claim_due(svc)
    assert len(first) == 3 and len({c.token for c in first}) == 3
    for c in first:
        stored = row(svc, c.id)
        assert (stored.status, stored.claim_token) == ("sending", c.token)
        assert stored.claimed_until == clock.now + timedelta(seconds=lease(svc))
        assert stored.attempts == 0  # claimed, not tried yet
    assert worker.claim_due(svc) == []
    clock.advance(lease(svc))
    assert worker.claim_due(svc) == []  # held up to the end of its lease...
    clock.advance(1)
    again = worker.claim_due(svc)  # ...and taken over after it, with new tokens
    assert [c.id for c in again] == [c.id for c in first]
    assert not {c.token for c in again} & {c.token for c in first}


def test_renewal_right_before_the_send_keeps_a_slow_batch_from_being_taken_over(
    svc: Services, clock: FakeClock
) -> None:
    plant(svc, "late@example.com", 1)
    (claim,) = worker.claim_due(svc)
    clock.advance(lease(svc) - 1)  # the mails before it in the batch took that long
    renewed = worker.renew(svc, claim)
    assert renewed is not None and renewed.attempts == 1  # the try is counted here
    clock.advance(2)  # past the claim's first lease, within the renewed one
    assert worker.claim_due(svc) == []
    assert worker.mark_sent(svc, renewed, "<id@relatch.test>")
    assert row(svc, claim.id).status == "sent"


def test_a_claim_lost_to_another_worker_is_neither_renewed_nor_marked(
    svc: Services, clock: FakeClock
) -> None:
    plant(svc, "contested@example.com", 1)
    (lost,) = worker.claim_due(svc)  # worker A
    clock.advance(lease(svc) + 1)  # A is slow: its lease runs out
    (won,) = worker.claim_due(svc)  # worker B takes the mail over
    before = row(svc, won.id)

    assert worker.renew(svc, lost) is None  # A must not send it
    tried = replace(lost, attempts=1)  # as if A had renewed it in time
    assert worker.mark_sent(svc, tried, "<a@relatch.test>") is False
    worker.mark_failed(svc, tried, RuntimeError("relay down"))
    worker.release(svc, [lost])
    after = row(svc, won.id)
    # A wrote nothing: B's claim, the bodies, the count and the schedule are untouched.
    for field in ("status", "claim_token", "claimed_until", "attempts", "next_attempt_at"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.body_text and after.last_error is None and after.message_id is None

    mine = worker.renew(svc, won)
    assert mine is not None and mine.attempts == 1
    assert worker.mark_sent(svc, mine, "<b@relatch.test>") is True
    sent = row(svc, won.id)
    assert (sent.status, sent.claim_token, sent.message_id) == ("sent", None, "<b@relatch.test>")


class StallingRelay:
    """Worker A's relay: its first send stalls past the lease, and meanwhile worker B
    claims every mail A held (the first one too: A stalled holding it)."""

    def __init__(self, svc: Services, clock: FakeClock) -> None:
        self.svc = svc
        self.clock = clock
        self.sent: list[str] = []
        self.taken: list[Claimed] = []

    async def send(self, message: Mail) -> None:
        self.sent.append(message.recipient)
        if len(self.sent) == 1:
            self.clock.advance(lease(self.svc) + 1)
            self.taken = worker.claim_due(self.svc)


def test_the_loser_of_a_claim_sends_and_marks_nothing_it_lost(
    svc: Services, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relatch.mail.worker")
    for n in range(3):
        plant(svc, f"user{n}@example.com", n)
    relay = StallingRelay(svc, clock)

    assert anyio.run(worker.deliver_due, svc, relay) == 1

    # A sent only the mail it was sending when it lost the claims (a stall past the lease:
    # the stated duplicate bound), and skipped the two it had not reached.
    assert relay.sent == ["user0@example.com"]
    rows = outbox_rows(svc)
    assert [r.claim_token for r in rows] == [c.token for c in relay.taken]
    # A counted the tries of its whole batch when it renewed it, right before its sends;
    # B holds them now, so A could not take back the two it never sent.
    assert [(r.status, r.attempts) for r in rows] == [("sending", 1)] * 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("claim lost after the send" in m for m in messages) == 1
    assert sum("taken over by another worker" in m for m in messages) == 2
    # B holds them all and delivers them.
    for claim in relay.taken:
        mine = worker.renew(svc, claim)
        assert mine is not None and worker.mark_sent(svc, mine, f"<{claim.id}@b>")
    assert {r.status for r in outbox_rows(svc)} == {"sent"}


def test_migration_adds_the_token_and_an_old_claim_is_taken_over(
    svc: Services, clock: FakeClock
) -> None:
    cfg = migrate.alembic_config()
    with svc.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011_retention_indexes")
    assert "claim_token" not in {c["name"] for c in inspect(svc.engine).get_columns("outbox")}
    with svc.engine.begin() as conn:  # a mail an older version was sending when it died
        conn.execute(
            insert(OutboxMessage.__table__).values(
                template="reset_code",
                recipient="old@example.com",
                subject="s",
                body_text="t",
                body_html="h",
                status="sending",
                attempts=1,
                created_at=clock.now,
                next_attempt_at=clock.now,
                claimed_until=clock.now + timedelta(seconds=lease(svc)),
            )
        )
    migrate.upgrade(svc.engine)
    assert worker.claim_due(svc) == []
    clock.advance(lease(svc) + 1)
    (claim,) = worker.claim_due(svc)
    assert claim.recipient == "old@example.com" and claim.attempts == 1
    assert worker.renew(svc, claim) is not None
