"""Rate limits through HTTP, on SQLite, PostgreSQL and Redis: each trips at its number,
releases after its window, and answers 429 with Retry-After in the contract's shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.app import build, create_app
from relatch.core import codes
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage.models import ResetCode
from tests.conftest import FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.limit_backends import BACKENDS, backend_settings

LIMITED = {"success": False, "error": "Too many attempts, try again later"}
PEER = ("198.51.100.7", 40000)
OTHER_PEER = ("198.51.100.8", 40000)
# Another network: never signed in, a stranger to every account (known networks are /24s).
STRANGER = ("203.0.113.66", 40000)
REQUEST = "/v1/api-user-request-reset-password"
VERIFY = "/v1/api-user-verify-reset-password-code"
LOGIN = "/v1/api-login"
CREATE = "/v1/api-user-create"


def default(name: str) -> str:
    value = Settings.model_fields[f"limit_{name}"].default
    assert isinstance(value, str)
    return value


@dataclass
class Deployment:
    svc: Services
    clients: list[TestClient]

    def client(self, peer: tuple[str, int] = PEER) -> TestClient:
        c = TestClient(create_app(svc=self.svc), raise_server_exceptions=False, client=peer)
        c.__enter__()
        self.clients.append(c)
        return c


@pytest.fixture(params=BACKENDS)
def deploy(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []
    with backend_settings(str(request.param), tmp_path) as backend:

        def make(**limits: str) -> Deployment:
            values: dict[str, Any] = {**backend, **{f"limit_{k}": v for k, v in limits.items()}}
            settings = make_settings(tmp_path, values.pop("database_url"), **values)
            svc = build(settings, clock=clock)
            migrate.upgrade(svc.engine)
            d = Deployment(svc, [])
            made.append(d)
            return d

        yield make
        for d in made:
            for c in d.clients:
                c.__exit__(None, None, None)
            d.svc.close()


def create(client: TestClient, n: int, password: str = "correct horse battery") -> httpx.Response:
    return client.post(
        CREATE,
        json={
            "name": f"User {n}",
            "username": f"user{n:04d}",
            "email": f"user{n}@example.com",
            "privacyPolicy": True,
            "password": password,
        },
    )


def limited(resp: httpx.Response, retry_after: int) -> bool:
    return (
        resp.status_code == 429
        and resp.json() == LIMITED
        and resp.headers["retry-after"] == str(retry_after)
    )


def test_reset_per_address_trips_at_3_and_releases_after_15_minutes(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()  # the defaults: 3/15m,10/1h
    c = d.client()
    assert create(c, 1).json()["success"] is True
    for _ in range(3):
        assert c.post(REQUEST, json={"email": "user1@example.com"}).json() == {"success": True}
    assert limited(c.post(REQUEST, json={"email": "user1@example.com"}), 900)
    # The same address however it is written: one counter.
    assert limited(c.post(REQUEST, json={"email": " USER1@example.com"}), 900)
    clock.advance(899)
    assert limited(c.post(REQUEST, json={"email": "user1@example.com"}), 1)
    clock.advance(1)
    assert c.post(REQUEST, json={"email": "user1@example.com"}).json() == {"success": True}
    # Refused requests were not recorded: 4 reset mails, not 6 (beside the activation mail).
    mailbox = Mailbox(d.svc)
    mailbox.run_workers()
    subjects = [str(m["Subject"]) for m in mailbox.to("user1@example.com")]
    assert sum("reset code" in s for s in subjects) == 4 and len(subjects) == 5


def test_reset_per_address_hourly_window(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    c = deploy().client()
    sent = 0
    for _ in range(4):  # four 15-minute windows: 3 + 3 + 3 + 1 = the hour's 10
        for _ in range(3):
            if c.post(REQUEST, json={"email": "ghost@example.com"}).status_code == 200:
                sent += 1
        clock.advance(900)
    assert sent == 10
    clock.now = clock.now.replace(hour=13, minute=0, second=0) - clock.now.resolution
    assert c.post(REQUEST, json={"email": "ghost@example.com"}).status_code == 429
    clock.advance(clock.now.resolution.total_seconds())
    assert c.post(REQUEST, json={"email": "ghost@example.com"}).status_code == 200


def test_unknown_address_is_limited_exactly_like_a_known_one(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    c = deploy().client()
    assert create(c, 1).json()["success"] is True

    def run(address: str) -> list[tuple[int, str | None, Any]]:
        out = []
        for _ in range(5):
            r = c.post(REQUEST, json={"email": address})
            out.append((r.status_code, r.headers.get("retry-after"), r.json()))
        return out

    known = run("user1@example.com")
    unknown = run("nobody@example.com")
    assert known == unknown
    assert [s for s, _, _ in known] == [200, 200, 200, 429, 429]


def test_reset_per_ip_trips_at_30_per_hour(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()  # default 30/1h per IP
    c = d.client()
    for i in range(30):
        assert c.post(REQUEST, json={"email": f"a{i}@example.com"}).status_code == 200
    assert limited(c.post(REQUEST, json={"email": "fresh@example.com"}), 3600)
    # Another client is not affected; the address counter did not count the refusal.
    assert (
        d.client(OTHER_PEER).post(REQUEST, json={"email": "fresh@example.com"}).status_code == 200
    )
    clock.advance(3600)
    assert c.post(REQUEST, json={"email": "fresh@example.com"}).status_code == 200


def login(c: TestClient, username: str, password: str) -> httpx.Response:
    return c.post(LOGIN, json={"username": username, "password": password})


def test_failed_logins_per_account_growing_delays(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(failures_per_account="3/15m,5/1h", failures_per_ip="off")
    c = d.client()
    assert create(c, 1).json()["success"] is True
    for _ in range(3):
        assert login(c, "user0001", "wrong password").json()["success"] is False
    # Over: refused before the password is even checked, the right one included.
    assert limited(login(c, "user0001", "correct horse battery"), 900)
    # Unknown and known identifiers alike; case does not matter.
    for _ in range(3):
        assert login(c, "nobody", "wrong password").status_code == 200
    assert limited(login(c, "NOBODY", "wrong password"), 900)
    clock.advance(900)
    # Not locked: once the window ends the owner signs in; a success is not a failure.
    assert login(c, "User0001", "correct horse battery").json()["success"] is True
    stranger = d.client(STRANGER)
    for _ in range(2):
        assert login(stranger, "user0001", "wrong password").json()["success"] is False
    # 5 failures by unknown clients this hour: the wait grows to the end of the hour...
    assert limited(login(stranger, "user0001", "correct horse battery"), 2700)
    # ...for unknown clients only: the owner's network signed in, it has its own budget.
    assert login(c, "user0001", "correct horse battery").json()["success"] is True
    clock.advance(2700)
    assert login(stranger, "user0001", "correct horse battery").json()["success"] is True


def test_wrong_current_password_on_change_counts_as_a_failure(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(failures_per_account="3/15m", failures_per_ip="off")
    owner = d.client()
    assert create(owner, 1).json()["success"] is True
    token = login(owner, "user1@example.com", "correct horse battery").json()["token"]
    change = "/v1/api/user/change-password"
    headers = {"x-jwt-token": token}
    thief = d.client(STRANGER)  # a stolen session, used from elsewhere
    for _ in range(3):
        body = {"currentPassword": "a wrong guess", "newPassword": "a fresh passphrase"}
        resp = thief.post(change, json=body, headers=headers)
        assert resp.json() == {"success": False, "error": "Invalid username or password"}
    # Guessing through a stolen session shares the failure budget of unknown clients.
    right = {"currentPassword": "correct horse battery", "newPassword": "a fresh passphrase"}
    assert limited(thief.post(change, json=right, headers=headers), 900)
    assert limited(login(thief, "user1@example.com", "correct horse battery"), 900)
    # The owner's network signed in before: its own budget, not spent by the thief.
    assert login(owner, "user1@example.com", "correct horse battery").json()["success"] is True
    clock.advance(900)
    assert thief.post(change, json=right, headers=headers).json() == {"success": True}


def test_failed_code_checks_spend_the_ip_budget_not_the_accounts(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Code failures are bounded per code (5 tries), per address (codes per window) and per
    IP; they no longer spend the account's password budget, which strangers could use to
    keep the owner out."""
    d = deploy(failures_per_account="3/5m", failures_per_ip="3/5m")
    c = d.client()
    assert create(c, 1).json()["success"] is True
    mailbox = Mailbox(d.svc)
    assert c.post(REQUEST, json={"email": "user1@example.com"}).status_code == 200
    code = mailbox.last_code("user1@example.com")
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    body = {"email": "user1@example.com", "code": wrong, "newPassword": "a new passphrase"}
    stranger = d.client(STRANGER)
    # Verify and reset share the IP's failure budget.
    assert stranger.post(VERIFY, json=body).json()["success"] is False
    assert stranger.post("/v1/api-user-reset-password", json=body).json()["success"] is False
    assert stranger.post(VERIFY, json=body).json()["success"] is False
    right = {**body, "code": code}
    assert limited(stranger.post(VERIFY, json=right), 300)
    # The owner's right code and password from elsewhere: not refused (2 tries left).
    assert login(c, "user0001", "correct horse battery").json()["success"] is True
    assert c.post(VERIFY, json=right).json() == {"success": True}  # not a failure
    assert c.post(VERIFY, json=right).json() == {"success": True}
    clock.advance(300)
    assert stranger.post("/v1/api-user-reset-password", json=right).json() == {"success": True}


def test_failures_per_ip_across_accounts(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(failures_per_account="off", failures_per_ip="4/15m")
    c = d.client()
    for i in range(4):  # credential stuffing: one try per account
        assert login(c, f"victim{i}", "password123!").status_code == 200
    assert limited(login(c, "victim9", "password123!"), 900)
    assert limited(c.post(VERIFY, json={"email": "v@example.com", "code": "AAAA-AAAA"}), 900)
    # Another IP is not held back by this one.
    assert login(d.client(OTHER_PEER), "victim9", "password123!").status_code == 200
    clock.advance(900)
    assert login(c, "victim9", "password123!").status_code == 200


def test_signup_per_ip(deploy: Callable[..., Deployment], clock: FakeClock) -> None:
    d = deploy(signup_per_ip="2/1h")
    c = d.client()
    # A refused password is a typo to fix, not a sign-up: it does not count.
    assert create(c, 1, password="short").json()["success"] is False
    assert create(c, 1).json()["success"] is True
    # Probing a taken address counts (enumeration through "already exists").
    assert create(c, 1).json()["success"] is False
    assert limited(create(c, 2), 3600)
    assert create(d.client(OTHER_PEER), 2).json()["success"] is True
    clock.advance(3600)
    assert create(c, 3).json()["success"] is True


def test_x_forwarded_for_only_from_trusted_proxies(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(reset_per_ip="2/1h", reset_per_address="off")
    d.svc.settings.trusted_proxies = "10.0.0.0/8"
    proxy = d.client(("10.0.0.2", 5000))
    stranger = d.client(("203.0.113.5", 5000))

    def ask(c: TestClient, xff: str) -> int:
        headers = {"X-Forwarded-For": xff}
        return c.post(REQUEST, json={"email": "x@example.com"}, headers=headers).status_code

    # Behind the proxy: each forwarded client has its own budget.
    assert [ask(proxy, "6.6.6.6, 198.51.100.1") for _ in range(3)] == [200, 200, 429]
    assert ask(proxy, "198.51.100.2") == 200
    # A stranger cannot escape its limit by forging the header.
    assert [ask(stranger, f"198.51.100.{50 + i}") for i in range(3)] == [200, 200, 429]
    # Nor spend someone else's: 198.51.100.2 still has its second request.
    assert ask(proxy, "198.51.100.2") == 200


def test_limits_can_be_turned_off(deploy: Callable[..., Deployment]) -> None:
    c = deploy(reset_per_address="off", reset_per_ip="off").client()
    for _ in range(40):
        assert c.post(REQUEST, json={"email": "a@example.com"}).status_code == 200


# One backend: 1,000 requests cost ~15 s on SQLite, ~45 s on PostgreSQL (suite budget);
# the stores' contract (tests/storage/test_limit_store.py) covers all three.
@pytest.mark.parametrize("deploy", ["sqlite"], indirect=True)
def test_a_thousand_wrong_codes_never_succeed(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """The strongest single-IP attacker under the default limits: a fresh code every 10
    minutes for the victim, and a guess every minute for 1,000 minutes (16.7 hours).
    Bound (docs/security.md 6.3.1): at most 5 tries per code reach a digest comparison."""
    d = deploy(
        failures_per_account=default("failures_per_account"),
        failures_per_ip=default("failures_per_ip"),
    )
    c = d.client()
    assert create(c, 1).json()["success"] is True
    issued = 0
    for i in range(1000):
        if i % 10 == 0:
            if c.post(REQUEST, json={"email": "user1@example.com"}).status_code == 200:
                issued += 1
            reset_requests.process_requests(d.svc)
        guess = codes.display(codes.generate())
        r = c.post(VERIFY, json={"email": "user1@example.com", "code": guess})
        assert r.json() != {"success": True}
        clock.advance(60)
    with d.svc.sessions() as s:
        tries = s.scalar(select(func.coalesce(func.sum(ResetCode.attempts), 0)))
        made = s.scalar(select(func.count()).select_from(ResetCode))
    # One code per 10 minutes stays within 3/15m and 10/1h: 100 codes, 5 tries each.
    assert made == issued == 100
    assert tries is not None and tries <= 5 * made
    assert tries / 32**8 < 1e-9


def test_refused_verify_does_not_touch_the_code(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(failures_per_account="off", failures_per_ip="1/15m")
    c = d.client()
    assert create(c, 1).json()["success"] is True
    assert c.post(REQUEST, json={"email": "user1@example.com"}).status_code == 200
    code = Mailbox(d.svc).last_code("user1@example.com")
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    assert c.post(VERIFY, json={"email": "user1@example.com", "code": wrong}).status_code == 200
    for _ in range(10):
        assert c.post(VERIFY, json={"email": "user1@example.com", "code": wrong}).status_code == 429
    with d.svc.sessions() as s:
        assert s.scalar(select(ResetCode.attempts)) == 1  # refused before the code counter


def test_username_and_address_share_one_account_budget(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Limit evasion (NIST 800-63B 5.2.2 counts failures per subscriber account): naming the
    account by its username and by its address must not give two budgets."""
    c = deploy(failures_per_account="3/15m", failures_per_ip="off").client()
    assert create(c, 1).json()["success"] is True
    assert login(c, "user0001", "wrong password").json()["success"] is False
    assert login(c, "user1@example.com", "wrong password").json()["success"] is False
    assert login(c, "USER0001", "wrong password").json()["success"] is False
    assert limited(login(c, "user1@example.com", "correct horse battery"), 900)
    assert limited(login(c, "user0001", "correct horse battery"), 900)
    clock.advance(900)
    assert login(c, "user0001", "correct horse battery").json()["success"] is True


def test_code_requests_of_one_address_share_a_budget_however_written(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Limit evasion: an internationalised domain written in Unicode and in punycode is one
    address (the account is found both ways), so it must be one budget of codes, the
    budget that bounds code guessing (docs/security.md 6.3.1)."""
    d = deploy(reset_per_address="2/15m")
    c = d.client()
    body = {
        "name": "Ada",
        "username": "ada-idn",
        "email": "ada@exämple.com",
        "privacyPolicy": True,
        "password": "correct horse battery",
    }
    assert c.post(CREATE, json=body).json()["success"] is True
    assert c.post(REQUEST, json={"email": "ada@exämple.com"}).status_code == 200
    assert c.post(REQUEST, json={"email": "ada@xn--exmple-cua.com"}).status_code == 200
    assert limited(c.post(REQUEST, json={"email": "ada@exämple.com"}), 900)
    assert limited(c.post(REQUEST, json={"email": "ada@xn--exmple-cua.com"}), 900)
