"""Equal work on both sides of every secret, proven without a clock (issue 12).

Threat (enumeration and code probing by timing, CWE-208): a wrong code for an address with
a live code and for an unknown address must not differ in the work they cause, or the time
they take tells a prober that the address has an account (and a live code). The bench
measures the times; here each request's database work is recorded with SQLAlchemy's
cursor events: the same statements (kind and tables, in order) and the same number of rows
written on both sides, on SQLite and PostgreSQL.

The sides: verifyResetPassword and resetPassword with a wrong code for an address with a
live code, an unknown address, and an account without a live code; login with a wrong
password for a known and an unknown user; the TOTP step of login with a wrong token and
with a replayed one; and the sign-in form of /v1/oauth/authorize like login.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.app import create_app
from relatch.core.meta import RequestMeta
from relatch.services import reset_requests
from relatch.services.context import Services
from relatch.settings import Settings
from tests.api.test_oauth_authorize import AUTHORIZE, code_query, is_signin, new_client, post
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.api import session_headers
from tests.helpers.statements import Recorded, recording
from tests.helpers.totp import enable, token

PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback: an https issuer for the sign-in form.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def work(svc: Services, request: Callable[[], Any]) -> Recorded:
    with recording(svc.engine) as done:
        request()
    return done


def assert_equal_work(sides: dict[str, Recorded]) -> None:
    (first, reference), *others = sides.items()
    assert reference.statements, "nothing recorded"
    for name, other in others:
        assert other.shapes == reference.shapes, f"{name} ran other statements than {first}"
        assert other.written == reference.written, (
            f"{name} wrote {other.written} rows, {first} {reference.written}"
        )


def wrong_code(code: str) -> str:
    """A well-formed code that is not `code`."""
    return ("ABCD-EFGH", "HGFE-DCBA")[code.replace("-", "") == "ABCDEFGH"]


@pytest.fixture
def code_sides(client: TestClient, make_account: Any, mailbox: Mailbox) -> dict[str, str]:
    """Three addresses: one with a live code, an unknown one, an account without a code."""
    live = make_account()
    client.post("/v1/api-user-request-reset-password", json={"email": live.email})
    assert mailbox.last_code(live.email)
    idle = make_account()
    return {
        "live code": live.email,
        "unknown address": "nobody@example.com",
        "no live code": idle.email,
    }


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/api-user-verify-reset-password-code", {}),
        ("/v1/api-user-reset-password", {"newPassword": PASSWORD}),
    ],
    ids=["verifyResetPassword", "resetPassword"],
)
def test_a_wrong_code_does_the_same_work_whoever_the_address_is(
    svc: Services,
    client: TestClient,
    mailbox: Mailbox,
    code_sides: dict[str, str],
    path: str,
    extra: dict[str, str],
) -> None:
    code = mailbox.last_code(code_sides["live code"])

    def check(email: str) -> Callable[[], None]:
        def run() -> None:
            body = {"email": email, "code": wrong_code(code), **extra}
            assert client.post(path, json=body).json()["success"] is False

        return run

    # Each side once before recording: first-time work (a limit window's first hit, say)
    # is not what tells the sides apart.
    for email in code_sides.values():
        check(email)()
    sides = {name: work(svc, check(email)) for name, email in code_sides.items()}
    assert_equal_work(sides)


def login(client: TestClient, username: str, password: str, totp: str | None = None) -> Any:
    body = {"username": username, "password": password}
    if totp is not None:
        body["totpToken"] = totp
    return client.post("/v1/api-login", json=body).json()


def test_a_wrong_password_does_the_same_work_for_known_and_unknown_users(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    sides_of = {
        "known user": lambda: login(client, acct.username, "wrong password!"),
        "unknown user": lambda: login(client, "nobody", "wrong password!"),
        "known address": lambda: login(client, acct.email, "wrong password!"),
        "unknown address": lambda: login(client, "nobody@example.com", "wrong password!"),
    }
    for run in sides_of.values():
        assert run()["success"] is False
    assert_equal_work({name: work(svc, run) for name, run in sides_of.items()})


def test_a_wrong_totp_token_does_the_same_work_as_a_replayed_one(
    svc: Services, client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct: Account = make_account()
    key, _ = enable(client, clock, session_headers(client, acct))
    clock.advance(30)
    used = token(clock, key)
    assert login(client, acct.username, acct.password, used)["success"] is True
    wrong = next(t for t in ("123456", "654321", "111111") if t != used)
    sides_of = {
        "wrong token": lambda: login(client, acct.username, acct.password, wrong),
        "replayed token": lambda: login(client, acct.username, acct.password, used),
    }
    for run in sides_of.values():
        assert run()["success"] is False
    assert_equal_work({name: work(svc, run) for name, run in sides_of.items()})


@pytest.fixture
def web(svc: Services) -> Iterator[TestClient]:
    with TestClient(
        create_app(svc=svc), base_url="https://relatch.test", raise_server_exceptions=False
    ) as c:
        yield c


def test_the_sign_in_form_does_the_same_work_for_known_and_unknown_users(
    svc: Services, web: TestClient, make_account: Any
) -> None:
    acct: Account = make_account()
    query = code_query(new_client(svc, "authorization_code"))
    page = web.get(AUTHORIZE, params=query)
    assert is_signin(page), page.text

    def sign_in(username: str) -> Callable[[], None]:
        def run() -> None:
            resp = post(web, query, page, step="signin", username=username, password="wrong!!")
            assert is_signin(resp), resp.text  # the form again, with the one message

        return run

    sides_of = {"known user": sign_in(acct.username), "unknown user": sign_in("nobody")}
    for run in sides_of.values():
        run()
    assert_equal_work({name: work(svc, run) for name, run in sides_of.items()})


def test_a_reset_request_does_the_same_work_for_known_and_unknown_addresses(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    """requestResetPassword, through the group commit (a group of one here)."""
    acct: Account = make_account()

    def ask(email: str) -> Callable[[], None]:
        def run() -> None:
            resp = client.post("/v1/api-user-request-reset-password", json={"email": email})
            assert resp.json() == {"success": True}

        return run

    sides_of = {"known address": ask(acct.email), "unknown address": ask("nobody@example.com")}
    for run in sides_of.values():
        run()
    assert_equal_work({name: work(svc, run) for name, run in sides_of.items()})


def test_reset_requests_grouped_in_one_transaction_do_the_same_work_known_or_not(
    svc: Services, make_account: Any
) -> None:
    """Two requests committed together, a known address and an unknown one: between the
    group's BEGIN and COMMIT, each runs the same statements and writes as many rows."""
    acct: Account = make_account()
    meta = RequestMeta(client_ip="198.51.100.7", request_id="equal")

    async def both() -> None:
        await asyncio.gather(
            reset_requests.request_reset_grouped(svc, acct.email, meta),
            reset_requests.request_reset_grouped(svc, "nobody@example.com", meta),
        )

    asyncio.run(both())  # first-time work (a limit window's first hit) is not recorded
    with recording(svc.engine) as done:
        asyncio.run(both())
    kinds = [s.kind for s in done.statements]
    # One transaction (on PostgreSQL, psycopg begins it implicitly: no BEGIN statement).
    assert kinds.count("BEGIN") <= 1, kinds
    inner = [s for s in done.statements if s.kind != "BEGIN"]
    half = len(inner) // 2
    assert half and len(inner) == 2 * half, kinds
    known, unknown = Recorded(inner[:half]), Recorded(inner[half:])
    assert_equal_work({"known address": known, "unknown address": unknown})
