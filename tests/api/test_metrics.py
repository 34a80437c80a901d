"""GET /metrics (issue 13): each counter moves by exactly what happened, through HTTP.

A whole reset (request, a wrong try, verify, reset, both mails delivered, sign-in), then
the other events one by one: a code killed by its tries, a code that expired unused, a
mail retried then abandoned, a rate-limit refusal, each sign-in scheme, the queue gauges.
Every counter that moved is compared, so a counter counted twice, or in the wrong
place, fails too. The scrapes of several processes: tests/e2e/test_metrics_processes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from relatch.app import build, create_app
from relatch.infra import metrics
from relatch.mail.compose import Mail
from relatch.mail.transports import MailDirTransport
from relatch.services.context import Services
from relatch.workers import EXPIRED_GRACE, Workers
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.activation import ACTIVATE, REQUEST
from tests.helpers.api import KEYS, login, session_headers
from tests.helpers.metrics import Key, counter_changes, key, samples, value

NEW_PASSWORD = "violet lantern over water"
WRONG = "0000-0000"


def scrape(client: TestClient) -> dict[Key, float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return samples(resp.text)


def measuring(client: TestClient) -> Callable[[], dict[Key, float]]:
    """Starts measuring now; the function returned gives the counters that moved since."""
    start = scrape(client)
    return lambda: counter_changes(start, scrape(client))


def requests(operation: str, outcome: str) -> Key:
    return key("relatch_http_requests_total", operation=operation, outcome=outcome)


def codes(event: str) -> Key:
    return key("relatch_reset_codes_total", event=event)


def mails(event: str) -> Key:
    return key("relatch_mails_total", event=event)


def sign_ins(scheme: str) -> Key:
    return key("relatch_sign_ins_total", scheme=scheme)


def ask(client: TestClient, email: str) -> None:
    resp = client.post("/v1/api-user-request-reset-password", json={"email": email})
    assert resp.json() == {"success": True}


def verify(client: TestClient, email: str, code: str) -> bool:
    resp = client.post(
        "/v1/api-user-verify-reset-password-code", json={"email": email, "code": code}
    )
    return bool(resp.json()["success"])


def test_a_whole_reset_moves_each_counter_by_exactly_its_events(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    mailbox.run_workers()  # whatever creating the account queued is sent before measuring
    start = scrape(client)

    ask(client, acct.email)
    code = mailbox.last_code(acct.email)  # the workers: code issued, mail queued and sent
    assert not verify(client, acct.email, WRONG)
    assert verify(client, acct.email, code)
    resp = client.post(
        "/v1/api-user-reset-password",
        json={"email": acct.email, "code": code, "newPassword": NEW_PASSWORD},
    )
    assert resp.json() == {"success": True}
    mailbox.run_workers()  # the "password changed" notice
    assert login(client, acct.username, NEW_PASSWORD)["success"] is True
    after = scrape(client)

    assert counter_changes(start, after) == {
        requests("requestResetPassword", "success"): 1,
        requests("verifyResetPassword", "refused"): 1,
        requests("verifyResetPassword", "success"): 1,
        requests("resetPassword", "success"): 1,
        requests("login", "success"): 1,
        codes("issued"): 1,
        codes("used"): 1,
        mails("queued"): 2,
        mails("sent"): 2,
        sign_ins("password"): 1,
    }
    # Every answer timed, by operation.
    count = "relatch_http_request_duration_seconds_count"
    assert (
        value(after, count, operation="resetPassword")
        - value(start, count, operation="resetPassword")
        == 1
    )
    # Nothing left waiting.
    assert value(after, "relatch_mail_queue_depth") == 0
    assert value(after, "relatch_mail_queue_oldest_age_seconds") == 0


def test_a_code_is_killed_by_the_wrong_try_that_uses_its_last_try(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    ask(client, acct.email)
    mailbox.last_code(acct.email)
    changes = measuring(client)
    for _ in range(4):
        assert not verify(client, acct.email, WRONG)
    assert codes("killed") not in (after_four := changes())
    assert after_four[requests("verifyResetPassword", "refused")] == 4

    assert not verify(client, acct.email, WRONG)  # the 5th: RELATCH_RESET_CODE_MAX_ATTEMPTS
    assert not verify(client, acct.email, WRONG)  # a dead code has no try left to use

    assert changes()[codes("killed")] == 1


def test_only_a_code_never_used_revoked_or_killed_counts_as_expired(
    client: TestClient, mailbox: Mailbox, make_account: Any, svc: Services, clock: FakeClock
) -> None:
    used, killed, expired = make_account(), make_account(), make_account()
    for acct in (used, killed, expired):
        ask(client, acct.email)
    code = mailbox.last_code(used.email)
    mailbox.last_code(killed.email)
    resp = client.post(
        "/v1/api-user-reset-password",
        json={"email": used.email, "code": code, "newPassword": NEW_PASSWORD},
    )
    assert resp.json() == {"success": True}
    for _ in range(svc.settings.reset_code_max_attempts):
        verify(client, killed.email, WRONG)
    start = scrape(client)

    # Past expiry: still kept a day for late tries, so not pruned, not counted yet...
    clock.advance(svc.settings.reset_code_ttl + 1)
    mailbox.run_workers()
    assert codes("expired") not in counter_changes(start, scrape(client))
    # ...then pruned, each row counted once, whatever became of it.
    clock.advance(EXPIRED_GRACE.total_seconds())
    mailbox.run_workers()
    mailbox.run_workers()  # a second prune finds nothing more

    assert counter_changes(start, scrape(client)).get(codes("expired")) == 1


class FailingRelay:
    async def send(self, message: Mail) -> None:
        raise ConnectionRefusedError("relay down")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    return make_settings(tmp_path, db_url, mail_max_attempts=2)


def test_a_mail_retried_then_abandoned(
    client: TestClient, make_account: Any, svc: Services, clock: FakeClock
) -> None:
    acct: Account = make_account()
    changes = measuring(client)
    ask(client, acct.email)
    workers = Workers(svc, FailingRelay())
    anyio.run(workers.run_once)  # issued, queued, first try failed
    assert measure_mails(changes()) == {"queued": 1, "retried": 1}

    clock.advance(3600)  # past its backoff
    anyio.run(workers.mail_pass)  # second and last try

    assert measure_mails(changes()) == {"queued": 1, "retried": 1, "abandoned": 1}


def measure_mails(changes: dict[Key, float]) -> dict[str, float]:
    return {
        dict(labels)["event"]: n
        for (name, labels), n in changes.items()
        if name == "relatch_mails_total"
    }


def test_the_queue_gauges_read_the_outbox(
    client: TestClient, make_account: Any, svc: Services, clock: FakeClock
) -> None:
    acct: Account = make_account()
    ask(client, acct.email)
    workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))
    anyio.run(workers.requests_pass)  # the mail is queued, not sent
    clock.advance(42)

    found = scrape(client)
    assert value(found, "relatch_mail_queue_depth") == 1
    assert value(found, "relatch_mail_queue_oldest_age_seconds") == 42

    anyio.run(workers.mail_pass)
    found = scrape(client)
    assert value(found, "relatch_mail_queue_depth") == 0


def test_rate_limit_refusals_by_limit_name(client: TestClient) -> None:
    changes = measuring(client)
    for _ in range(3):  # RELATCH_LIMIT_RESET_PER_ADDRESS: 3/15m,10/1h
        ask(client, "someone@example.com")
    resp = client.post("/v1/api-user-request-reset-password", json={"email": "someone@example.com"})
    assert resp.status_code == 429

    assert changes() == {
        requests("requestResetPassword", "success"): 3,
        requests("requestResetPassword", "limited"): 1,
        key("relatch_rate_limit_refusals_total", limit="reset_per_address"): 1,
    }


def test_sign_ins_by_scheme(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    token = login(client, acct.username, acct.password)["token"]
    client.cookies.clear()
    made = client.post(KEYS, json={"name": "ci"}, headers={"x-jwt-token": token}).json()
    assert made["success"] is True, made
    changes = measuring(client)

    assert client.get("/v1/api/user", headers={"x-jwt-token": token}).status_code == 200
    assert client.get("/v1/api/user", headers={"x-api-key": made["apiKey"]}).status_code == 200
    client.cookies.set("jwt", token)
    assert client.get("/v1/api/user").status_code == 200
    client.cookies.clear()
    assert client.get("/v1/api/user", headers={"x-jwt-token": "forged"}).status_code == 401

    moved = changes()
    assert {k: n for k, n in moved.items() if k[0] == "relatch_sign_ins_total"} == {
        sign_ins("jwt_header"): 1,
        sign_ins("api_key"): 1,
        sign_ins("jwt_cookie"): 1,
    }
    assert moved[requests("getCurrentUser", "unauthenticated")] == 1


@pytest.fixture
def metrics_off(tmp_path: Path, db_url: str, svc: Services) -> Iterator[TestClient]:
    app = create_app(svc=build(make_settings(tmp_path, db_url, metrics=False)))
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        app.state.services.close()


def test_metrics_off_removes_the_endpoint(metrics_off: TestClient) -> None:
    before = metrics.REQUESTS.labels("healthz", "success")._value.get()
    assert metrics_off.get("/healthz").status_code == 200

    resp = metrics_off.get("/metrics")

    assert resp.status_code == 404
    assert resp.json() == {"success": False, "error": "Not found"}
    # Nor is anything counted.
    assert metrics.REQUESTS.labels("healthz", "success")._value.get() == before


def test_every_series_is_relatchs_own(client: TestClient) -> None:
    """The contract's names `relatch_*`: no process or Python collector of the library."""
    text = client.get("/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert names and all(name.startswith("relatch_") for name in names), sorted(names)


def test_activation_codes_issued_killed_and_used(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    def activation(event: str) -> Key:
        return key("relatch_activation_codes_total", event=event)

    def send(path: str, body: dict[str, str] | None = None) -> Any:
        resp = client.post(path, json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp.json()

    changes = measuring(client)
    acct: Account = make_account(activated=False)  # createUser issues the first code
    headers = session_headers(client, acct)
    assert changes()[activation("issued")] == 1
    for _ in range(5):  # the fifth wrong try uses the last try: the code is killed
        assert send(ACTIVATE, {"code": WRONG})["success"] is False
    assert changes()[activation("killed")] == 1
    assert send(REQUEST)["success"] is True  # a new code, the old one dead already
    mailbox.run_workers()
    code = mailbox.last_activation_code(acct.email)
    assert send(ACTIVATE, {"code": code}) == {"success": True}
    moved = {k: v for k, v in changes().items() if k[0] == "relatch_activation_codes_total"}
    assert moved == {activation("issued"): 2, activation("killed"): 1, activation("used"): 1}
