"""Two processes, one PostgreSQL (issue 10): two real `relatch serve` processes on one fresh
database, with the same secret key and public URL (two replicas behind one address),
both running their workers. A code asked for through one is verified and used through the
other; 50 concurrent resets with one code, spread over both, give exactly one success,
and the winner's password is the one that signs in, on both.

(Each queued mail sent once while both run their workers: test_two_processes_mail.py.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from relatch.core.errors import CodeRejected
from tests.conftest import CODE_LINE
from tests.e2e.browser import in_ci
from tests.e2e.servers import Server, SMTPInbox, relatch_server
from tests.helpers.database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RACERS = 50
PASSWORD = "analytical engine zero"
REJECTED = {"success": False, "error": CodeRejected.public_message}
ENV = {
    # One address for both, as behind a load balancer: a session from one is good on the
    # other (same issuer and key).
    "RELATCH_PUBLIC_URL": "https://relatch.test",
    # Every racer comes from 127.0.0.1 and holds the right code: no limit may stand in for
    # the single-use check this test is about.
    "RELATCH_LIMIT_FAILURES_PER_IP": "1000/15m",
    "RELATCH_LIMIT_FAILURES_PER_KNOWN_NETWORK": "1000/15m",
}


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, inbox: SMTPInbox
) -> Iterator[tuple[Server, Server]]:
    """Shared by the tests of this module (each uses its own account)."""
    tmp_path = tmp_path_factory.mktemp("two")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_postgres_database())
        except OperationalError as exc:
            # Never silent: in CI (make test runs PostgreSQL) a failure, locally a skip.
            first_line = str(exc.orig).strip().splitlines()[0][:200]
            reason = f"PostgreSQL is not reachable: {first_line}"
            if in_ci():
                pytest.fail(reason)
            pytest.skip(reason)
        env = {
            **ENV,
            "RELATCH_DATABASE_URL": url,
            "RELATCH_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        }
        pair = []
        for name in ("a", "b"):  # one after the other: `a` migrates the fresh database
            workdir = tmp_path / name
            workdir.mkdir()
            pair.append(stack.enter_context(relatch_server(workdir, **env)))
        yield pair[0], pair[1]


def post(srv: Server, path: str, body: dict[str, object]) -> dict[str, object]:
    resp = httpx.post(f"{srv.url}/v1/{path}", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def create(srv: Server, name: str) -> str:
    email = f"{name}@example.com"
    body = {
        "name": name,
        "username": name,
        "email": email,
        "password": PASSWORD,
        "privacyPolicy": True,
    }
    created = post(srv, "api-user-create", body)
    assert created["success"] is True, created
    return email


def mailed_code(srv: Server, inbox: SMTPInbox, email: str) -> str:
    assert post(srv, "api-user-request-reset-password", {"email": email}) == {"success": True}
    body = inbox.wait_for(email, "reset code").get_body(preferencelist=("plain",))
    assert body is not None
    found = CODE_LINE.search(body.get_content())
    assert found, "no code in the mail"
    return found.group(1)


def signs_in(srv: Server, login: str, password: str) -> bool:
    return post(srv, "api-login", {"username": login, "password": password})["success"] is True


def test_a_code_asked_through_one_process_is_used_through_the_other(
    servers: tuple[Server, Server], inbox: SMTPInbox
) -> None:
    a, b = servers
    email = create(a, "ada-lovelace")
    code = mailed_code(a, inbox, email)
    assert post(b, "api-user-verify-reset-password-code", {"email": email, "code": code}) == {
        "success": True
    }
    new = "analytical engine one"
    body = {"email": email, "code": code, "newPassword": new}
    assert post(b, "api-user-reset-password", body) == {"success": True}
    # Used up, for both.
    for srv in (a, b):
        assert post(srv, "api-user-reset-password", {**body, "newPassword": "x" + new}) == REJECTED
        assert signs_in(srv, email, new)
        assert not signs_in(srv, email, PASSWORD)
    # A session from one process is good on the other (shared key and issuer).
    token = post(a, "api-login", {"username": email, "password": new})["token"]
    me = httpx.get(f"{b.url}/v1/api/user", headers={"x-jwt-token": str(token)}, timeout=10)
    assert me.status_code == 200 and me.json()["email"] == email


async def race(servers: tuple[Server, Server], email: str, code: str) -> list[httpx.Response]:
    """RACERS resets with one code and each its own new password, half through each
    process, all sent at once."""
    clients = [httpx.AsyncClient(base_url=srv.url, timeout=60) for srv in servers]
    try:
        return list(
            await asyncio.gather(
                *(
                    clients[n % 2].post(
                        "/v1/api-user-reset-password",
                        json={
                            "email": email,
                            "code": code,
                            "newPassword": f"difference engine {n}",
                        },
                    )
                    for n in range(RACERS)
                )
            )
        )
    finally:
        for c in clients:
            await c.aclose()


def test_50_concurrent_resets_with_one_code_over_both_give_one_success(
    servers: tuple[Server, Server], inbox: SMTPInbox
) -> None:
    a, b = servers
    email = create(b, "grace-hopper")
    code = mailed_code(b, inbox, email)
    answers = asyncio.run(race(servers, email, code))

    assert Counter(r.status_code for r in answers) == {200: RACERS}, [r.text for r in answers]
    winners = [n for n, r in enumerate(answers) if r.json() == {"success": True}]
    assert len(winners) == 1, [r.json() for r in answers]
    assert all(r.json() == REJECTED for n, r in enumerate(answers) if n != winners[0])
    # The winner's password is the account's, on both; the others' and the old one are not.
    loser = (winners[0] + 1) % RACERS
    for srv in (a, b):
        assert signs_in(srv, email, f"difference engine {winners[0]}")
        assert not signs_in(srv, email, f"difference engine {loser}")
        assert not signs_in(srv, email, PASSWORD)
