"""The workers' batches (issue 12), on SQLite and PostgreSQL: a batch of reset requests is
decided in one transaction, a batch of sent mails is marked in one statement, and one bad
item in a batch costs only itself. Statements are counted with SQLAlchemy's cursor events
(tests/helpers/statements.py), not timed: the rates live in `make bench`.

Owner's side: one transaction per request and one UPDATE per mail capped the workers near
130 decisions and 130 mails a second. Safety, kept: a mail is marked sent only once the
relay took it (a mark that fails leaves it to be sent again, never lost), and every code
in a batch is mailed to its own account (the row id in each link is the account's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from sqlalchemy import select

from relatch.core import codes
from relatch.core.errors import CodeRejected
from relatch.core.meta import RequestMeta
from relatch.mail import worker
from relatch.mail.compose import Mail
from relatch.mail.transports import MailDirTransport, list_messages
from relatch.services import reset, reset_requests
from relatch.services.context import Services
from relatch.storage import outbox_claims
from relatch.storage.models import OutboxMessage, ResetCode, ResetRequest, User
from tests.api.test_poison_items import outbox_rows, plant
from tests.conftest import CODE_LINE, FakeClock
from tests.helpers.app import LINK_LINE
from tests.helpers.statements import Recorded, counted, recording
from tests.storage.test_worker_drain import add_accounts, record_requests


def test_a_batch_of_reset_requests_is_decided_in_one_transaction(svc: Services) -> None:
    known = add_accounts(svc, 10)
    unknown = [f"stranger{n}@example.com" for n in range(10)]
    record_requests(svc, [e for pair in zip(known, unknown, strict=True) for e in pair])

    with counted(svc.engine, "commit") as committed, recording(svc.engine) as done:
        assert reset_requests.process_requests(svc, 50) == 20

    assert len(committed) == 1  # one BEGIN/COMMIT for the twenty decisions
    # One statement per table: the claim, the old codes killed, the codes, mails and trail.
    assert done.writes_to("reset_requests") == ["DELETE"]
    assert done.writes_to("reset_codes") == ["UPDATE", "INSERT"]
    assert done.writes_to("outbox") == ["INSERT"]
    assert done.writes_to("audit_events") == ["INSERT"]
    assert sum(s.kind == "SELECT" and "users" in s.tables for s in done.statements) == 1
    with svc.sessions() as s:
        assert s.scalar(select(ResetRequest.id)) is None
        mails = {m.recipient: m.body_text for m in s.scalars(select(OutboxMessage))}
        users = {u.email: u.id for u in s.scalars(select(User))}
        owners = {r.id: r.user_id for r in s.execute(select(ResetCode.id, ResetCode.user_id))}
    assert set(mails) == set(known)  # a code for each account, nothing for the strangers
    for email, body in mails.items():
        # Each mail carries its own account's code and link: the ids the batch INSERT
        # returned were matched to the right rows.
        link = LINK_LINE.search(body)
        assert link is not None
        parts = codes.split_link_token(unquote(link.group(1).split("token=", 1)[1]))
        assert parts is not None and owners[parts[0]] == users[email]
        code = CODE_LINE.search(body)
        assert code is not None
        reset.verify(svc, email, code.group(1), RequestMeta())  # raises if not its code


def test_an_account_asked_for_twice_in_one_batch_keeps_only_its_newer_code(
    svc: Services,
) -> None:
    (email,) = add_accounts(svc, 1)
    record_requests(svc, [email, email])

    assert reset_requests.process_requests(svc, 50) == 2

    # Two mails, as one at a time would have sent; only the second one's code lives.
    first, second = (CODE_LINE.search(r.body_text) for r in outbox_rows(svc))
    assert first is not None and second is not None
    reset.verify(svc, email, second.group(1), RequestMeta())
    with pytest.raises(CodeRejected):
        reset.verify(svc, email, first.group(1), RequestMeta())
    with svc.sessions() as s:
        assert [
            r.revoked_at is None for r in s.scalars(select(ResetCode).order_by(ResetCode.id))
        ] == [
            False,
            True,
        ]


class PoisonedRenderer:
    def __init__(self, inner: Any, poisoned: str) -> None:
        self.inner = inner
        self.poisoned = poisoned

    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        if context.get("email") == self.poisoned:
            raise RuntimeError("template blew up")
        return self.inner.render(template, context)


def test_one_bad_request_costs_its_batch_only_itself(svc: Services) -> None:
    known = add_accounts(svc, 5)
    svc.renderer = PoisonedRenderer(svc.renderer, known[2])
    record_requests(svc, known)

    # The batch fails whole, then its requests are decided one transaction each.
    assert reset_requests.process_requests(svc, 50) == 5

    assert {r.recipient for r in outbox_rows(svc)} == set(known) - {known[2]}
    with svc.sessions() as s:
        (left,) = s.scalars(select(ResetRequest))
    assert (left.email, left.attempts, left.failed_at) == (known[2], 1, None)


class Relay:
    """Accepts every mail, or raises for the recipients in `refuse`."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.sent: list[str] = []
        self.refuse = refuse or set()
        self.then: Callable[[], None] = lambda: None

    async def send(self, message: Mail) -> None:
        to = message.recipient
        if to in self.refuse:
            raise ConnectionError("relay refused it")
        self.sent.append(to)
        self.then()


def mail_updates(done: Recorded) -> int:
    return len(done.writes_to("outbox"))


@pytest.mark.parametrize("transport", ["relay", "files"])
def test_a_batch_of_sent_mails_is_marked_in_one_statement(
    svc: Services, transport: str, tmp_path: Any
) -> None:
    count = worker.MARK_EVERY
    for n in range(count):
        plant(svc, f"user{n}@example.com", n)
    sender: Any = Relay() if transport == "relay" else MailDirTransport(tmp_path / "out")

    with recording(svc.engine) as done:
        assert anyio.run(worker.deliver_due, svc, sender) == count

    # The claim, the renewal (the tries counted) and the mark: three UPDATEs for the batch.
    assert mail_updates(done) == 3
    rows = outbox_rows(svc)
    assert {(r.status, r.attempts, r.body_text) for r in rows} == {("sent", 1, "")}
    # Each keeps its own Message-ID.
    assert len({r.message_id for r in rows}) == count
    assert all(r.message_id and f".{r.id}." in r.message_id for r in rows)
    if transport == "files":
        assert len(list_messages(tmp_path / "out")) == count


def test_a_refused_mail_in_a_batch_costs_only_itself(svc: Services, clock: FakeClock) -> None:
    for n in range(5):
        plant(svc, f"user{n}@example.com", n)
    relay = Relay(refuse={"user2@example.com"})

    assert anyio.run(worker.deliver_due, svc, relay) == 4

    rows = {r.recipient: r for r in outbox_rows(svc)}
    assert relay.sent == [f"user{n}@example.com" for n in (0, 1, 3, 4)]
    assert {to: r.status for to, r in rows.items()} == {
        **{to: "sent" for to in relay.sent},
        "user2@example.com": "pending",
    }
    refused = rows["user2@example.com"]
    assert refused.attempts == 1 and refused.next_attempt_at > clock.now


def test_a_failed_mark_leaves_the_mails_to_be_sent_again_never_lost(
    svc: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marks fail after the sends (a crash in between is the same for the rows): the
    mails stay `sending`, are taken over after the lease and sent again (duplicates, the
    stated bound), never marked sent without a send, never lost."""
    for n in range(3):
        plant(svc, f"user{n}@example.com", n)

    def down(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("the mark never reached the database")

    monkeypatch.setattr(outbox_claims, "finish_sent", down)  # the batch's mark
    monkeypatch.setattr(outbox_claims, "finish", down)  # and the one-by-one fallback
    relay = Relay()
    assert anyio.run(worker.deliver_due, svc, relay) == 3
    assert {(r.status, r.attempts) for r in outbox_rows(svc)} == {("sending", 1)}
    monkeypatch.undo()

    clock.advance(svc.settings.mail_claim_seconds + 1)
    assert anyio.run(worker.deliver_due, svc, relay) == 3
    assert relay.sent == [f"user{n}@example.com" for n in (0, 1, 2)] * 2
    assert {(r.status, r.attempts) for r in outbox_rows(svc)} == {("sent", 2)}


def test_a_mark_that_fails_for_the_batch_falls_back_to_one_mail_at_a_time(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        plant(svc, f"user{n}@example.com", n)

    def broken(*_args: Any, **_kw: Any) -> set[int]:
        raise ValueError("one row the batch statement cannot take")

    monkeypatch.setattr(outbox_claims, "finish_sent", broken)
    assert anyio.run(worker.deliver_due, svc, Relay()) == 3
    assert {r.status for r in outbox_rows(svc)} == {"sent"}


def test_a_slow_relay_never_sends_past_the_batch_lease(svc: Services, clock: FakeClock) -> None:
    """The batch is renewed once, before its sends: a send starts only while its whole
    deadline fits in that lease; the rest are given back (their try not counted) and
    claimed again, so no other worker could have taken one over while it was sent."""
    for n in range(5):
        plant(svc, f"user{n}@example.com", n)
    relay = Relay()
    # Each send takes a third of the lease: three fit (with the deadline's margin), the
    # fourth would not.
    relay.then = lambda: clock.advance(svc.settings.mail_claim_seconds / 3)

    assert anyio.run(worker.deliver_due, svc, relay) == 5

    assert relay.sent == [f"user{n}@example.com" for n in range(5)]  # each once
    assert {(r.status, r.attempts) for r in outbox_rows(svc)} == {("sent", 1)}
