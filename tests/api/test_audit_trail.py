"""The one audit mechanism, `audit.trail`: its sync face (`with`) and its async face
(`async with`, for use cases that await a hash) write the same rows in every case."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from relatch.core.errors import CodeRejected
from relatch.core.meta import RequestMeta
from relatch.services import audit
from relatch.services.accounts import NewAccount, create_user
from relatch.services.context import Services
from relatch.storage.db import transaction
from tests.helpers.audit import rows

META = RequestMeta(client_ip="198.51.100.7", user_agent="ua", request_id="rid-1")
EVENT = audit.CODE_CHECK


class Stop(BaseException):
    """Stands for a cancellation: not an outcome of the call."""


@pytest.fixture(params=["with", "async with"])
def run(request: pytest.FixtureRequest, svc: Services) -> Callable[..., None]:
    """Run `body(trail)` inside `audit.trail(svc, EVENT, META, **kw)`, entered one way."""

    def sync(body: Callable[[audit.Trail], None], **kw: Any) -> None:
        with audit.trail(svc, EVENT, META, **kw) as t:
            body(t)

    def async_(body: Callable[[audit.Trail], None], **kw: Any) -> None:
        async def main() -> None:
            async with audit.trail(svc, EVENT, META, **kw) as t:
                body(t)

        anyio.run(main)

    return sync if request.param == "with" else async_


def trail_rows(svc: Services) -> list[tuple[str, str, int | None, bool]]:
    return [
        (r.outcome, r.client_ip or "", r.account_id, r.target_digest is not None)
        for r in rows(svc)
        if r.event == EVENT
    ]


def test_success_is_written_alone_once(svc: Services, run: Callable[..., None]) -> None:
    def body(t: audit.Trail) -> None:
        t.account_id = 42

    run(body)
    assert trail_rows(svc) == [("ok", "198.51.100.7", 42, False)]


def test_success_written_in_the_callers_transaction_is_not_written_again(
    svc: Services, run: Callable[..., None]
) -> None:
    def body(t: audit.Trail) -> None:
        with transaction(svc.sessions) as s:
            t.account_id = 7
            t.write(s)

    run(body)
    assert trail_rows(svc) == [("ok", "198.51.100.7", 7, False)]


def test_failure_after_write_leaves_only_the_failure_row(
    svc: Services, run: Callable[..., None]
) -> None:
    # The failed transaction takes its "ok" row with it; the failure row is written alone.
    def body(t: audit.Trail) -> None:
        with transaction(svc.sessions) as s:
            t.write(s)
            raise CodeRejected()

    with pytest.raises(CodeRejected):
        run(body, account_id=3)
    assert trail_rows(svc) == [("code_rejected", "198.51.100.7", 3, False)]


def test_failure_names_the_account_of_the_login_else_its_digest(
    svc: Services, run: Callable[..., None]
) -> None:
    owner = anyio.run(
        create_user, svc, NewAccount("owner@example.com", "owner", "Owner", None), META
    )

    def fail(t: audit.Trail) -> None:
        raise CodeRejected()

    for login in ("OWNER@example.com", "nobody@example.com"):
        with pytest.raises(CodeRejected):
            run(fail, login=login)
    # Where a lookup would leak (resolve=False), the digest only.
    with pytest.raises(CodeRejected):
        run(fail, login="owner@example.com", resolve=False)
    assert trail_rows(svc) == [
        ("code_rejected", "198.51.100.7", owner, False),
        ("code_rejected", "198.51.100.7", None, True),
        ("code_rejected", "198.51.100.7", None, True),
    ]


def test_cancellation_writes_nothing(svc: Services, run: Callable[..., None]) -> None:
    def body(t: audit.Trail) -> None:
        raise Stop()

    with pytest.raises(Stop):
        run(body)
    assert trail_rows(svc) == []


def test_a_row_that_cannot_be_written_does_not_hide_the_answer(
    svc: Services,
    run: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Availability: a broken trail neither turns the answer into a 500 nor masks the
    # real exception; the log names the event and the error type, no request data.
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(audit, "add", broken)

    def fail(t: audit.Trail) -> None:
        raise CodeRejected()

    with caplog.at_level(logging.ERROR, logger=audit.__name__):
        run(lambda t: None)
        with pytest.raises(CodeRejected):
            run(fail, login="someone@example.com")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"audit row {EVENT}/ok not written: RuntimeError",
        f"audit row {EVENT}/code_rejected not written: RuntimeError",
    ]
    assert "someone" not in " ".join(messages)
