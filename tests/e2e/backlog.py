"""A backlog of reset mails for the fault tests of real `relatch serve` processes: a relay
slow enough that the backlog takes a while, accounts to reset, and what arrived, counted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from relatch.storage import accounts
from relatch.storage.db import make_engine, make_sessionmaker, transaction
from relatch.storage.models import OutboxMessage, ResetRequest
from tests.e2e.servers import Server, SMTPInbox, free_port, relatch_server

# The outbox row a message was built from: mail/worker.message_id is
# <relatch.ROW.CREATED@host>, the same on every try of that row.
MESSAGE_ID = re.compile(r"<relatch\.(\d+)\.\d+@")


@dataclass
class SlowRelay(SMTPInbox):
    """A real SMTP relay that takes `delay` seconds to store each mail before its 250, as a
    busy relay does: a sender killed meanwhile leaves a mail the relay delivers anyway."""

    delay: float = 0.1

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        # Which relay took it (two relays may share one list): one per sending process.
        envelope.content = f"X-Relay-Port: {self.port}\r\n".encode() + envelope.content
        return await super().handle_DATA(server, session, envelope)

    def snapshot(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def wait_until(self, done: Callable[[list[EmailMessage]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"relay: not there within {timeout}s")
                self._lock.wait(left)


@contextmanager
def slow_relay(delay: float, shared: SlowRelay | None = None) -> Iterator[SlowRelay]:
    """A slow relay on a port of its own; with `shared`, it keeps its mail in that relay's
    list (one list for the test, the relay's port in each message's X-Relay-Port)."""
    relay = SlowRelay(port=free_port(), delay=delay)
    if shared is not None:
        relay.messages, relay._lock = shared.messages, shared._lock
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


def start_together(stack: ExitStack, started: list[tuple[Path, dict[str, str]]]) -> list[Server]:
    """Several `relatch serve` processes started at once (their start-up, ~2 s each, is
    most of a test's time), each stopped by `stack`. Their database is migrated already."""
    managers = [relatch_server(workdir, **env) for workdir, env in started]
    with ThreadPoolExecutor(len(managers)) as pool:
        entered = [pool.submit(m.__enter__) for m in managers]
    servers = []
    for manager, future in zip(managers, entered, strict=True):
        if future.exception() is None:
            servers.append(future.result())
            stack.push(manager.__exit__)  # stopped with the stack
    for future in entered:
        future.result()  # a server that did not start (it stopped itself): raised here
    return servers


def seed_accounts(database_url: str, count: int) -> list[str]:
    """`count` accounts, written straight into a migrated database (no activation mail:
    only the reset mails make the backlog). Their addresses."""
    engine = make_engine(database_url)
    emails = [f"backlog{n:03d}@example.com" for n in range(count)]
    try:
        with transaction(make_sessionmaker(engine)) as s:
            for n, email in enumerate(emails):
                accounts.add(
                    s,
                    email=email,
                    username=f"backlog{n:03d}",
                    name=f"Backlog {n}",
                    password_hash=None,
                    now=datetime.now(UTC),
                    job_title=None,
                    company_name=None,
                )
    finally:
        engine.dispose()
    return emails


def seed_outbox(database_url: str, emails: list[str]) -> None:
    """A backlog already queued (say, through an outage): one mail per address, all due
    now, written in one transaction, so that the first worker to look claims a whole batch."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            for n, email in enumerate(emails):
                s.add(
                    OutboxMessage(
                        template="reset_code",
                        recipient=email,
                        subject=f"Backlog mail {n}",
                        body_text=f"Backlog mail {n}\n",
                        body_html=f"<p>Backlog mail {n}</p>",
                        status="pending",
                        attempts=0,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
    finally:
        engine.dispose()


def queue_resets(urls: list[str], emails: list[str]) -> None:
    """One reset request per address through the HTTP API, spread over the servers."""
    with httpx.Client(timeout=10) as client:
        for n, email in enumerate(emails):
            url = urls[n % len(urls)]
            resp = client.post(f"{url}/v1/api-user-request-reset-password", json={"email": email})
            assert resp.status_code == 200 and resp.json() == {"success": True}, resp.text


def outbox_statuses(database_url: str) -> Counter[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            )
            return Counter({status: n for status, n in rows})
    finally:
        engine.dispose()


def requests_recorded(database_url: str) -> int:
    """Reset requests not yet turned into a mail (or set aside)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ResetRequest)).scalar_one())
    finally:
        engine.dispose()


def wait_all_sent(database_url: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := outbox_statuses(database_url)) != Counter(sent=count):
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox after {timeout}s: {dict(seen)}")
        time.sleep(0.1)


@dataclass
class Delivered:
    """What the relay received, counted per recipient and per outbox row."""

    messages: list[EmailMessage]
    per_recipient: Counter[str] = field(init=False)
    per_row: Counter[int] = field(init=False)
    per_relay: Counter[int] = field(init=False)

    def __post_init__(self) -> None:
        self.per_recipient = Counter(str(m["To"]) for m in self.messages)
        ids = [MESSAGE_ID.match(str(m["Message-ID"])) for m in self.messages]
        assert all(ids), [str(m["Message-ID"]) for m in self.messages]
        self.per_row = Counter(int(i[1]) for i in ids if i)
        self.per_relay = Counter(int(str(m["X-Relay-Port"])) for m in self.messages)

    @property
    def duplicates(self) -> int:
        """Mails beyond the first of each recipient (each got exactly one reset mail)."""
        return sum(n - 1 for n in self.per_recipient.values())


def recipients_of(messages: list[EmailMessage]) -> set[str]:
    return {str(m["To"]) for m in messages}
