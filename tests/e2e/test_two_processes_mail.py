"""Two processes, one PostgreSQL (issue 10, the mail part): two `relatch serve` processes
on one database, both running their mail workers over one backlog, send each mail once.

The claims (storage/outbox_claims.py) keep them apart: each mail is claimed by one
conditional UPDATE, and a claim whose lease ran out while its worker was busy with the
mails before it is taken over by the other process and skipped by the first (its renewal
right before the send finds another token): the case where both used to send. To make it
happen, the backlog is one batch that appears at once, process A looks for mail often and
B seldom, so A claims the batch (20 mails, ~4 s at the relay's pace) and B, idle, takes
over the claims whose 2 s lease ran out before A reached them.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import database
from tests.e2e.backlog import (
    Delivered,
    recipients_of,
    seed_outbox,
    slow_relay,
    start_together,
    wait_all_sent,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAILS = 20  # one claim batch (mail/worker.CLAIM_BATCH)
LEASE = 2
RELAY_DELAY = 0.2
POLL = {"a": "0.05", "b": "0.5"}  # RELATCH_WORKER_POLL_SECONDS of each process
TAKEN_OVER = "taken over by another worker"


def test_two_servers_on_one_postgresql_send_each_mail_once(tmp_path: Path) -> None:
    # A schema of its own, dropped afterwards; without RELATCH_TEST_DATABASE_URL the test
    # skips and says so (PostgreSQL is what it is about).
    with (
        database("postgresql", tmp_path, migrated=True) as url,
        slow_relay(RELAY_DELAY) as relay,
        slow_relay(RELAY_DELAY, shared=relay) as relay_b,
        ExitStack() as stack,
    ):
        env = {"RELATCH_DATABASE_URL": url, "RELATCH_MAIL_CLAIM_SECONDS": str(LEASE)}
        # One relay port per process: the port a mail came through names its sender.
        ports = {"a": relay.port, "b": relay_b.port}
        started = []
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            smtp = f"smtp://127.0.0.1:{ports[name]}"
            own = {"RELATCH_WORKER_POLL_SECONDS": POLL[name], "RELATCH_SMTP_URL": smtp}
            started.append((workdir, {**env, **own}))
        servers = start_together(stack, started)
        emails = [f"backlog{n:03d}@example.com" for n in range(MAILS)]
        seed_outbox(url, emails)  # both workers are polling: they race for it
        relay.wait_until(lambda got: recipients_of(got) >= set(emails), timeout=30)
        wait_all_sent(url, MAILS, timeout=10)
        delivered = Delivered(relay.snapshot())
        taken_over = sum(s.log.read_text().count(TAKEN_OVER) for s in servers)

    shares = sorted(delivered.per_relay[port] for port in ports.values())
    print(
        f"\ntwo processes: {MAILS} queued, {len(delivered.messages)} delivered "
        f"({shares} per process), {delivered.duplicates} duplicate(s), "
        f"{taken_over} claim(s) taken over and skipped by their first holder"
    )
    assert delivered.per_recipient == dict.fromkeys(emails, 1)  # each exactly once
    assert delivered.per_row == dict.fromkeys(delivered.per_row, 1)
    assert set(delivered.per_relay) <= set(ports.values())
