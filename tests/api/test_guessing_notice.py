"""Someone is guessing (issue 14): once strangers have spent an account's failure budget
(RELATCH_LIMIT_FAILURES_PER_ACCOUNT), its owner gets one mail saying so, never more than
one a day, across processes, and strangers cannot make it a way to flood the mailbox.

Through HTTP behind a trusted proxy with the shipped default limits (10/15m,30/1h,100/1d
per account), on every limit backend, reading the mail a real SMTP server received.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from relatch.services import owner_notices
from relatch.services.context import Services
from tests.conftest import DATABASES, FakeClock
from tests.e2e.servers import SMTPInbox
from tests.helpers.limit_backends import BACKENDS
from tests.helpers.lockout import (
    LIMITED,
    PASSWORD,
    WRONG,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    limited,
    strangers,
)
from tests.helpers.notices import GUESSING, SMTPMailbox, mails, not_me_path, text_of
from tests.helpers.statements import recording

HOME = "192.0.2.10"
DAY = 86400
QUARTER = 15 * 60


def spend(d: Deployment, login: str, base: int = 1) -> None:
    """Ten strangers on ten networks, one wrong password each: the 15-minute budget of
    the account is spent, and the next stranger is refused."""
    for ip in strangers(10, base=base):
        assert d.login(ip, login, "not the password").json() == WRONG
    assert limited(d.login(f"100.64.{base + 200}.9", login, "still not it"))


def keep_guessing(d: Deployment, login: str, base: int) -> None:
    """Eleven more strangers' guesses, each answered as a wrong password or refused."""
    answers = [d.login(ip, login, "guess").json() for ip in strangers(11, base=base)]
    assert all(a in (WRONG, LIMITED) for a in answers)
    assert answers[-1] == LIMITED


@pytest.mark.parametrize("deploy", BACKENDS, indirect=True)
def test_one_mail_when_strangers_spend_the_budget_then_none_that_day(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    assert mails(d.mailbox, email, GUESSING) == []
    # Failures below the budget say nothing (a person mistyping is no attack).
    for ip in strangers(9):
        assert d.login(ip, email, "typo").json() == WRONG
    assert mails(d.mailbox, email, GUESSING) == []
    clock.advance(QUARTER)
    spend(d, email)
    (mail,) = mails(d.mailbox, email, GUESSING)
    text = text_of(mail)
    assert "If your password is long and used nowhere else, there is nothing to do" in text
    assert "at most once a day" in text
    not_me_path(mail)
    # The strangers go on all day, by username and by address, window after window
    # (refused at once, mostly, once the hour's and the day's budgets are spent too).
    for n in range(1, 20):
        clock.advance(QUARTER)
        keep_guessing(d, username if n % 2 else email, base=n * 10 % 200)
    assert clock.now.hour == 17  # the same day still (the mail went at 12:15)
    assert len(mails(d.mailbox, email, GUESSING)) == 1
    # 24 hours after the mail, one more.
    clock.advance(DAY - 19 * QUARTER - 1)
    keep_guessing(d, email, base=150)
    assert len(mails(d.mailbox, email, GUESSING)) == 1
    clock.advance(1)
    spend(d, email, base=160)
    assert len(mails(d.mailbox, email, GUESSING)) == 2
    # The owner's own known network was never refused meanwhile.
    assert d.login(HOME, username).json()["success"] is True


@pytest.mark.parametrize("deploy", BACKENDS, indirect=True)
def test_a_guesser_who_stops_at_the_count_is_reported_too(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """Exactly the budget and not one more: never refused, and still the budget is spent
    (the attempt that takes the last slot sends the mail)."""
    d = deploy(inbox=smtp_inbox)
    email, _ = d.create(HOME, 1)
    for ip in strangers(9):
        assert d.login(ip, email, "nope").json() == WRONG
    assert mails(d.mailbox, email, GUESSING) == []
    assert d.login("100.64.55.9", email, "nope").json() == WRONG
    assert len(mails(d.mailbox, email, GUESSING)) == 1


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_one_mail_a_day_across_processes(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """Two processes on one database: each has its own engine and memory; the time of the
    last mail is in the account's row, so the second process sends nothing."""
    first, second = deploy(inbox=smtp_inbox), deploy(inbox=smtp_inbox)
    email, _ = first.create(HOME, 1)
    spend(first, email)
    clock.advance(QUARTER)
    spend(second, email, base=50)
    assert limited(second.login("100.64.99.9", email, "again"))
    assert len(mails(first.mailbox, email, GUESSING)) == 1


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_refusal_after_the_mail_writes_nothing(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """Strangers decide how often this path runs: after the day's mail, a refused guess
    costs the notice one read (no write of the account, no mail, no not-me link; the
    refusal's own counters and audit row are as before)."""
    d = deploy(inbox=smtp_inbox)
    email, _ = d.create(HOME, 1)
    for ip in strangers(9):
        assert d.login(ip, email, "nope").json() == WRONG

    def tables_written(ip: str, expected: Any) -> set[str]:
        with recording(d.svc.engine) as seen:
            assert d.login(ip, email, "again").json() == expected
        return {t for s in seen.statements if s.kind in ("INSERT", "UPDATE") for t in s.tables}

    first = tables_written("100.64.76.9", WRONG)  # the failure that spends the budget
    assert {"users", "outbox", "not_me_links"} <= first, first
    for n in range(3):
        assert tables_written(f"100.64.{77 + n}.9", LIMITED) <= {"limit_counters", "audit_events"}


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_an_address_without_an_account_gets_nothing(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    spend(d, "ghost@example.com")
    spend(d, "ghost", base=50)
    d.mailbox.run_workers()
    assert d.mailbox.messages() == []


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_the_owners_own_failures_on_a_known_network_send_nothing(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """A known client spends its own budget (3/15m for a network): the owner mistyping at
    home is refused for a while, and that is no stranger guessing."""
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    assert d.login(HOME, username).json()["success"] is True
    for _ in range(3):
        assert d.login(HOME, username, "typo").json() == WRONG
    assert limited(d.login(HOME, username, PASSWORD))
    assert mails(d.mailbox, email, GUESSING) == []


def test_parallel_refusals_queue_one_mail(
    svc: Services, smtp_mailbox: SMTPMailbox, make_account: Any
) -> None:
    """Many refused guesses at once, in threads of one process or several: the conditional
    UPDATE of users.guessing_notice_at lets exactly one of them queue the mail."""
    acct = make_account()
    barrier = threading.Barrier(10)

    def refused(_: int) -> None:
        barrier.wait()
        owner_notices.someone_guessing(svc, acct.id)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(refused, range(10)))
    assert len(mails(smtp_mailbox, acct.email, GUESSING)) == 1
