"""One hostile item never stops the mail: each is handled alone and set aside after its tries.

Threat (issue 8, "one hostile item stops all mail"; issue 10, poison items): a reset
request or an outbox row that raises on every try used to stop the whole pass, go back
first in line, and keep the mail worker from ever running: a stranger who found such an
input stopped recovery for everyone. Now each item's failure is counted against it,
it is dead-lettered after its tries (visible in the CLI), and the two workers run apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text, update
from typer.testing import CliRunner

from relatch import workers as background
from relatch.app import cli as cli_app
from relatch.core.meta import RequestMeta
from relatch.mail import worker
from relatch.mail.compose import Mail
from relatch.mail.transports import MailDirTransport
from relatch.services import reset_requests, reset_retries
from relatch.services.context import Services
from relatch.services.ports import MailRenderer
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage.db import transaction
from relatch.storage.models import OutboxMessage, ResetRequest
from tests.conftest import CODE_LINE, Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings

GOOD = 50


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # 51 reset requests come from one test client: the per-IP reset limit is not under test.
    return make_settings(tmp_path, db_url, limit_reset_per_ip="off")


class PoisonedRenderer:
    """The real renderer, except that it raises for one recipient, on every try."""

    def __init__(self, inner: MailRenderer, poisoned: str) -> None:
        self.inner = inner
        self.poisoned = poisoned
        self.calls = 0

    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        if context.get("email") == self.poisoned:
            self.calls += 1
            raise RuntimeError("template blew up")
        return self.inner.render(template, context)


def reset_mails(mailbox: Mailbox) -> dict[str, str]:
    """Recipient -> the code of its reset mail."""
    found: dict[str, str] = {}
    for msg in mailbox.messages():
        if "reset code" in str(msg["Subject"]):
            body = msg.get_body(preferencelist=("plain",))
            assert body is not None
            match = CODE_LINE.search(body.get_content())
            assert match
            found[str(msg["To"])] = match.group(1)
    return found


def requests_rows(svc: Services) -> list[ResetRequest]:
    with svc.sessions() as s:
        return list(s.scalars(select(ResetRequest).order_by(ResetRequest.id)))


def test_a_poisoned_reset_request_among_fifty_good_ones(
    svc: Services,
    client: TestClient,
    make_account: Any,
    mailbox: Mailbox,
    clock: FakeClock,
    cli: CliRunner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounts: list[Account] = [make_account() for _ in range(GOOD + 1)]
    poisoned = accounts[GOOD // 2]
    renderer = PoisonedRenderer(svc.renderer, poisoned.email)
    svc.renderer = renderer
    for acct in accounts:
        resp = client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
        assert resp.json() == {"success": True}
    for _ in range(reset_retries.REQUEST_MAX_TRIES * 2):
        mailbox.run_workers()
        clock.advance(reset_retries.REQUEST_MAX_BACKOFF)
    mailbox.run_workers()
    codes = reset_mails(mailbox)
    # Every good request became a mail; the poisoned one none.
    assert set(codes) == {a.email for a in accounts if a is not poisoned}
    # Its tries were counted, and it was set aside after the last one. Each try renders it
    # twice: in its batch (which fails whole) and then alone (which counts the failure).
    assert renderer.calls == 2 * reset_retries.REQUEST_MAX_TRIES
    (dead,) = requests_rows(svc)
    assert dead.email == poisoned.email
    assert dead.attempts == reset_retries.REQUEST_MAX_TRIES and dead.failed_at is not None
    assert dead.last_error and "RuntimeError" in dead.last_error
    # Logged, without the address, the exception text or any code.
    assert any(r.levelname == "ERROR" and "dead letter" in r.getMessage() for r in caplog.records)
    assert poisoned.email not in caplog.text and "blew up" not in caplog.text
    assert not any(code in caplog.text for code in codes.values())
    # The operator sees it.
    out = cli.invoke(cli_app, ["mail", "requests", "--failed"])
    assert out.exit_code == 0, out.output
    (line,) = out.output.strip().splitlines()
    assert poisoned.email in line and "RuntimeError" in line
    # A good request still works afterwards: the pass goes on.
    good = accounts[0]
    client.post("/v1/api-user-request-reset-password", json={"email": good.email})
    before = len(mailbox.messages())
    mailbox.run_workers()
    assert len(mailbox.messages()) == before + 1


def plant(svc: Services, recipient: str, n: int) -> None:
    now = svc.clock()
    with transaction(svc.sessions) as s:
        s.add(
            OutboxMessage(
                template="reset_code",
                recipient=recipient,
                subject=f"Mail {n}",
                body_text=f"Body {n}\n",
                body_html=f"<p>Body {n}</p>",
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )


def outbox_rows(svc: Services) -> list[OutboxMessage]:
    with svc.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_poisoned_outbox_row_among_fifty_good_ones(
    svc: Services, mailbox: Mailbox, clock: FakeClock, cli: CliRunner
) -> None:
    # A row that genuinely breaks message building: a line break in a header value
    # (email refuses it, so no header can be injected either).
    evil = "victim@example.com\r\nBcc: thief@example.com"
    for n in range(GOOD + 1):
        plant(svc, evil if n == GOOD // 2 else f"good{n}@example.com", n)
    for _ in range(svc.settings.mail_max_attempts):
        mailbox.run_workers()
        clock.advance(worker.MAX_BACKOFF)
    mailbox.run_workers()
    delivered = {str(m["To"]) for m in mailbox.messages()}
    assert delivered == {f"good{n}@example.com" for n in range(GOOD + 1) if n != GOOD // 2}
    (poisoned,) = [r for r in outbox_rows(svc) if r.recipient == evil]
    assert poisoned.status == "abandoned"
    assert poisoned.attempts == svc.settings.mail_max_attempts
    assert poisoned.body_text == "" and poisoned.body_html == ""
    assert all(r.status == "sent" for r in outbox_rows(svc) if r.id != poisoned.id)
    # `relatch mail list --failed`: the dead letter, its stored text printed harmlessly.
    out = cli.invoke(cli_app, ["mail", "list", "--failed"])
    assert out.exit_code == 0, out.output
    (line,) = out.output.strip().splitlines()
    assert line.split("\t")[0] == str(poisoned.id)
    assert "victim@example.com\\r\\nBcc: thief@example.com" in line
    assert "\r" not in out.output


def test_a_message_that_cannot_be_built_is_a_counted_try(
    svc: Services, clock: FakeClock, tmp_path: Path
) -> None:
    plant(svc, "a@example.com\nBcc: b@example.com", 1)
    transport = MailDirTransport(tmp_path / "out")
    assert anyio.run(worker.deliver_due, svc, transport) == 0
    (row,) = outbox_rows(svc)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at == clock.now + timedelta(seconds=worker.backoff(1))


def test_reset_worker_raising_never_skips_the_mail_worker(
    svc: Services, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_svc: Services, batch: int = 50, should_stop: Any = None) -> int:
        raise RuntimeError("reset worker down")

    plant(svc, "someone@example.com", 1)
    monkeypatch.setattr(reset_requests, "process_requests", broken)
    mailbox.run_workers()
    assert [str(m["To"]) for m in mailbox.messages()] == ["someone@example.com"]


def test_mail_worker_raising_never_skips_the_reset_worker(
    svc: Services, client: TestClient, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = make_account()
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})

    async def broken(_svc: Services, _transport: Any, *_stop: Any) -> int:
        raise RuntimeError("mail worker down")

    monkeypatch.setattr(background, "deliver_due", broken)
    anyio.run(background.run_once, svc, MailDirTransport(svc.settings.mail_dir))
    assert requests_rows(svc) == []  # handled: the request became a code and an outbox row
    assert any(r.recipient == acct.email and r.status == "pending" for r in outbox_rows(svc))


def test_migration_keeps_pending_requests_and_downgrades(
    svc: Services, make_account: Any, mailbox: Mailbox
) -> None:
    acct = make_account()
    cfg = migrate.alembic_config()
    with svc.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007_reset_requests_delete")
    assert "failed_at" not in {c["name"] for c in inspect(svc.engine).get_columns("reset_requests")}
    with svc.engine.begin() as conn:  # a request recorded before the upgrade
        conn.execute(
            text("INSERT INTO reset_requests (email, requested_at) VALUES (:e, :t)"),
            {"e": acct.email, "t": svc.clock()},
        )
    migrate.upgrade(svc.engine)
    (row,) = requests_rows(svc)
    assert row.attempts == 0 and row.failed_at is None and row.next_attempt_at is None
    assert mailbox.last_code(acct.email)


class HangingRelay:
    """A relay that accepts the connection and never answers (until its timeout, hours)."""

    def __init__(self) -> None:
        self.hung = anyio.Event()

    async def send(self, message: Any) -> None:
        self.hung.set()
        await anyio.sleep_forever()


def test_a_hanging_relay_never_holds_up_reset_requests(svc: Services, make_account: Any) -> None:
    acct = make_account()
    plant(svc, "first@example.com", 1)  # the mail the relay hangs on
    relay = HangingRelay()

    def handled() -> bool:
        return requests_rows(svc) == []

    async def main() -> None:
        stopping = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(background.run_forever, svc, relay, stopping)
            with anyio.fail_after(10):
                await relay.hung.wait()
            # The mail worker is stuck in a send; a reset request arrives now.
            await anyio.to_thread.run_sync(
                reset_requests.request_reset, svc, acct.email, RequestMeta()
            )
            with anyio.fail_after(10):
                while not await anyio.to_thread.run_sync(handled):
                    await anyio.sleep(0.05)
            stopping.set()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert any(r.recipient == acct.email and r.status == "pending" for r in outbox_rows(svc))


def test_a_mail_whose_every_try_was_cut_off_ends_abandoned_unsent(
    svc: Services, clock: FakeClock, tmp_path: Path
) -> None:
    # Its process died during each of its tries (the send crashes it, say): the row sits
    # in `sending` with a lapsed lease and every try counted. Taken over once more, it
    # must become a dead letter, not one more crash.
    plant(svc, "crashes@example.com", 1)
    with transaction(svc.sessions) as s:
        s.execute(
            update(OutboxMessage).values(
                status="sending",
                attempts=svc.settings.mail_max_attempts,
                claim_token="0" * 32,
                claimed_until=clock.now - timedelta(seconds=1),
            )
        )
    out = tmp_path / "out"
    assert anyio.run(worker.deliver_due, svc, MailDirTransport(out)) == 0
    (row,) = outbox_rows(svc)
    assert row.status == "abandoned"
    assert row.last_error is not None and "TriesSpent" in row.last_error
    assert row.body_text == "" and row.claim_token is None
    assert not out.exists() or not any(out.rglob("*.eml"))
    # One try short of the bound it is still sent: the check is not off by one.
    plant(svc, "fine@example.com", 2)
    with transaction(svc.sessions) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.recipient == "fine@example.com")
            .values(attempts=svc.settings.mail_max_attempts - 1)
        )
    assert anyio.run(worker.deliver_due, svc, MailDirTransport(out)) == 1


class FlakyTransport:
    """Refuses each message's first try (a connection error), keeps what it sends."""

    def __init__(self) -> None:
        self.tried: set[str] = set()
        self.ids: list[tuple[str, str]] = []

    async def send(self, message: Mail) -> None:
        self.ids.append((message.recipient, message.message_id))
        if message.recipient not in self.tried:
            self.tried.add(message.recipient)
            raise ConnectionError("relay went away")


def test_every_try_of_a_mail_carries_its_one_message_id(svc: Services, clock: FakeClock) -> None:
    # A copy sent twice (a crash between the relay's accepting it and its mark) must be
    # one message to the recipient's mail client: the same Message-ID on every try.
    plant(svc, "a@example.com", 1)
    plant(svc, "b@example.com", 2)
    transport = FlakyTransport()
    assert anyio.run(worker.deliver_due, svc, transport) == 0
    clock.advance(worker.MAX_BACKOFF)
    assert anyio.run(worker.deliver_due, svc, transport) == 2
    by_to: dict[str, set[str]] = {}
    for to, mid in transport.ids:
        by_to.setdefault(to, set()).add(mid)
    assert len(transport.ids) == 4
    assert all(len(ids) == 1 for ids in by_to.values())
    assert by_to["a@example.com"] != by_to["b@example.com"]
    assert all(r.message_id in by_to[r.recipient] for r in outbox_rows(svc))
