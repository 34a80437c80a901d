"""The owner's notices as a real SMTP server receives them (issue 14), from real
`relatch serve` processes behind a trusted proxy (`X-Forwarded-For` names each client):
one notice per new client and none for a known one; one "someone is guessing" mail
although two processes on one PostgreSQL keep refusing strangers.

Negative checks ("no second notice") wait for a later mail first (an API key's notice,
queued after the event under test), so that nothing is still on its way.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.conftest import database
from tests.e2e.servers import Server, SMTPInbox, relatch_server
from tests.helpers.notices import API_KEY_CREATED, GUESSING, NEW_SIGN_IN

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
HOME = "192.0.2.10"
CAFE = "198.18.5.5"
TRUSTED = {"RELATCH_TRUSTED_PROXIES": "127.0.0.0/8"}


def create_account(server: Server, email: str, username: str) -> None:
    made = server.cli(
        "user", "create", "--email", email, "--username", username, "--name", "Owner",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


def sign_in(server: Server, ip: str, login: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/api-login",
        json={"username": login, "password": password},
        headers={"X-Forwarded-For": ip, "User-Agent": "e2e-agent/1.0"},
        timeout=10,
    )


def received(inbox: SMTPInbox, to: str, subject: str) -> list[EmailMessage]:
    return [m for m in inbox.messages if m["To"] == to and str(m["Subject"]) == subject]


def key_notice_after(server: Server, inbox: SMTPInbox, email: str, name: str) -> None:
    """Create an API key (CLI) and wait for its notice: every mail queued before is sent."""
    made = server.cli("apikey", "create", "--email", email, "--name", name)
    assert made.returncode == 0, made.stderr
    prefix = made.stdout.strip().splitlines()[-1][:11]
    deadline = time.monotonic() + 20
    while not any(
        prefix in str(m.get_body(preferencelist=("plain",)))
        for m in received(inbox, email, API_KEY_CREATED)
    ):
        assert time.monotonic() < deadline, "no API key notice within 20 s"
        time.sleep(0.1)


def test_one_notice_per_new_client_through_smtp(tmp_path: Path, inbox: SMTPInbox) -> None:
    email = "owner-e2e@example.com"
    smtp = {"RELATCH_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}", **TRUSTED}
    with relatch_server(tmp_path, **smtp) as server:
        create_account(server, email, "ownere2e")
        assert sign_in(server, HOME, email).json()["success"] is True  # the first: quiet
        assert sign_in(server, HOME, "ownere2e").json()["success"] is True  # known
        assert sign_in(server, CAFE, email).json()["success"] is True
        mail = inbox.wait_for(email, NEW_SIGN_IN)
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert "Device: e2e-agent/1.0" in text and "Network: 198.18.5.0/24" in text
        assert f"{server.url}/not-me?token=" in text
        assert sign_in(server, "198.18.5.77", email).json()["success"] is True  # known now
        key_notice_after(server, inbox, email, "marker")
        assert len(received(inbox, email, NEW_SIGN_IN)) == 1


@pytest.mark.postgres
def test_one_guessing_mail_from_two_processes(tmp_path: Path, inbox: SMTPInbox) -> None:
    email = "guessed-e2e@example.com"
    with database("postgresql", tmp_path, migrated=True) as url, ExitStack() as stack:
        env = {
            "RELATCH_DATABASE_URL": url,
            "RELATCH_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
            "RELATCH_LIMIT_FAILURES_PER_ACCOUNT": "3/1h",
            **TRUSTED,
        }
        servers = []
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            servers.append(stack.enter_context(relatch_server(workdir, **env)))
        a, b = servers
        create_account(a, email, "guessede2e")
        for n in range(3):
            assert sign_in(a, f"100.64.{n}.9", email, "wrong").json()["success"] is False
        assert sign_in(a, "100.64.10.9", email, "wrong").status_code == 429
        inbox.wait_for(email, GUESSING)
        for n in range(5):  # the other process refuses more strangers
            assert sign_in(b, f"100.64.{20 + n}.9", email, "wrong").status_code == 429
        key_notice_after(b, inbox, email, "marker")
        assert len(received(inbox, email, GUESSING)) == 1
