"""SIGKILL mid-send (issue 10): `relatch serve` killed while a backlog of reset mails is
being delivered loses none of them; after a restart on the same database every one
arrives, and at most one arrives twice.

The bound (mail/worker.py): a mail goes out twice only if the process dies between the
relay's accepting it and its mark; marks are written for the mails accepted in the last
MARK_SECONDS (MARK_EVERY at most), so one crash costs at most those, and the one being
sent. The mails the dead process had claimed wait out their lease
(RELATCH_MAIL_CLAIM_SECONDS, 2 s here) and are claimed by the new process.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from relatch.mail.worker import MARK_EVERY, MARK_SECONDS
from tests.conftest import database
from tests.e2e.backlog import (
    Delivered,
    outbox_statuses,
    queue_resets,
    recipients_of,
    requests_recorded,
    seed_accounts,
    slow_relay,
    wait_all_sent,
)
from tests.e2e.servers import relatch_server

pytestmark = pytest.mark.e2e

MAILS = 30
LEASE = 2
# Per mail, the relay's time to store it: the backlog takes a few seconds, so the kill lands
# mid-way, most likely while the relay holds a mail it delivers though its sender is gone.
RELAY_DELAY = 0.05
KILL_AFTER = 6  # delivered mails before the SIGKILL
# One worker, one crash: the mails accepted by the relay since the last mark (those of the
# last MARK_SECONDS, at RELAY_DELAY each, at most MARK_EVERY), and the one in flight.
DUPLICATE_BOUND = min(MARK_EVERY, math.ceil(MARK_SECONDS / RELAY_DELAY) + 1) + 1


def test_sigkill_mid_delivery_loses_no_mail_and_duplicates_within_the_bound(
    tmp_path: Path, db_kind: str
) -> None:
    # Migrated already (the session's template): the servers start without migrating.
    with database(db_kind, tmp_path, migrated=True) as url, slow_relay(RELAY_DELAY) as relay:
        env = {
            "RELATCH_DATABASE_URL": url,
            "RELATCH_SMTP_URL": f"smtp://127.0.0.1:{relay.port}",
            "RELATCH_MAIL_CLAIM_SECONDS": str(LEASE),
            "RELATCH_LIMIT_RESET_PER_IP": "off",  # the whole backlog comes from one client
        }
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        with relatch_server(first, **env) as srv:
            emails = seed_accounts(url, MAILS)
            queue_resets([srv.url], emails)
            relay.wait_until(lambda got: len(got) >= KILL_AFTER, timeout=20)
            srv.process.kill()  # SIGKILL: no shutdown, no release of its claims
            srv.process.wait(timeout=10)
            killed_at = time.monotonic()
        before = relay.snapshot()
        at_kill = outbox_statuses(url)
        waiting = requests_recorded(url)
        assert len(recipients_of(before)) < MAILS, "the backlog was gone before the kill"

        with relatch_server(second, **env):
            relay.wait_until(lambda got: recipients_of(got) >= set(emails), timeout=30)
            wait_all_sent(url, MAILS, timeout=10)
            recovered = time.monotonic() - killed_at
        delivered = Delivered(relay.snapshot())

    print(
        f"\nSIGKILL ({db_kind}): {MAILS} queued; {len(before)} delivered before the kill "
        f"({dict(at_kill)} in the outbox, {waiting} requests not yet turned into mail); "
        f"{len(delivered.messages) - len(before)} after the restart; "
        f"{delivered.duplicates} duplicate(s); all in {recovered:.1f}s after the kill"
    )
    assert set(delivered.per_recipient) == set(emails)  # every queued mail arrived
    assert delivered.duplicates <= DUPLICATE_BOUND, delivered.per_recipient
    # A duplicate is the same outbox row sent again, never a second mail for one request.
    assert max(delivered.per_row.values()) <= 1 + DUPLICATE_BOUND
    assert len(delivered.per_row) == MAILS
