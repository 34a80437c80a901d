"""Shared fixtures: a real database per test (SQLite file, or a PostgreSQL schema), a fixed
clock, fast argon2 parameters, and the ASGI app with its workers driven by the test."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from relatch import workers as background
from relatch.app import build, create_app
from relatch.mail.transports import MailDirTransport, list_messages
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage.db import normalise_url

PG_ENV = "RELATCH_TEST_DATABASE_URL"
# A reset code alone on its line, as the contract puts it in the mail (CRLF after SMTP).
CODE_LINE = re.compile(r"^([0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4})\r?$", re.MULTILINE)
DATABASES = ["sqlite", "postgresql"]


@dataclass
class FakeClock:
    """Injected time: tests move it explicitly (boundaries: TTL valid, TTL+1 not)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL: an SQLite file, or a new PostgreSQL schema.

    PostgreSQL is not optional: when RELATCH_TEST_DATABASE_URL is set (make test and CI
    set it) an unreachable server fails the test instead of skipping it.
    """
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'relatch.db'}"
        yield url
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (make test sets it)")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_settings(tmp_path: Path, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "secret_key": "test-secret-" + "k" * 32,
        "mail_dir": tmp_path / "mail",
        "public_url": "http://relatch.test",
        # TestClient's default Host; production serves only the public URL's host and
        # loopback (tests/api/test_host_header.py builds its app without this).
        "allowed_hosts": "testserver",
        # Fast argon2 for the suite; the real parameters are measured by `make bench`.
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
        "hash_workers": 4,
        "run_workers": False,
        # Every TestClient request comes from one peer ("testclient") and parallel-guess
        # tests share one account: raise the failure and sign-up limits for the suite;
        # the limit tests set their own (tests/api/test_limits.py). Reset limits stay default.
        "limit_failures_per_account": "1000/15m",
        "limit_failures_per_ip": "1000/15m",
        "limit_signup_per_ip": "1000/1h",
        # Known clients (a page's device cookie) too; tests/api/test_lockout*.py set theirs.
        "limit_failures_per_known_device": "1000/15m",
        "limit_failures_per_known_network": "1000/15m",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(params=DATABASES)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    with database(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return test_settings(tmp_path, db_url)


@pytest.fixture
def svc(settings: Settings, clock: FakeClock) -> Iterator[Services]:
    services = build(settings, clock=clock)
    migrate.upgrade(services.engine)
    yield services
    services.close()


class Mailbox:
    """The dev outbox of one test, filled by running the workers."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.folder = svc.settings.mail_dir

    def run_workers(self) -> None:
        anyio.run(background.run_once, self.svc, MailDirTransport(self.folder))

    def messages(self) -> list[EmailMessage]:
        out = []
        for path in list_messages(self.folder):
            with path.open("rb") as fh:
                msg = BytesParser(policy=policy.default).parse(fh)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if m["To"] == address]

    def last_code(self, address: str) -> str:
        self.run_workers()
        mails = [m for m in self.to(address) if "reset code" in str(m["Subject"])]
        assert mails, f"no reset mail for {address}"
        body = mails[0].get_body(preferencelist=("plain",))
        assert body is not None
        found = CODE_LINE.search(body.get_content())
        assert found, "no code alone on a line in the mail"
        return found.group(1)


@pytest.fixture
def mailbox(svc: Services) -> Mailbox:
    return Mailbox(svc)


@pytest.fixture
def client(svc: Services) -> Iterator[TestClient]:
    app = create_app(svc=svc)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class Account:
    id: int
    email: str
    username: str
    password: str


@pytest.fixture
def make_account(client: TestClient) -> Any:
    counter = iter(range(1, 10_000))

    def make(password: str = "correct horse battery", **fields: Any) -> Account:
        n = next(counter)
        body = {
            "name": f"User {n}",
            "username": fields.pop("username", f"user{n:04d}"),
            "email": fields.pop("email", f"user{n}@example.com"),
            "privacyPolicy": True,
            "password": password,
            **fields,
        }
        resp = client.post("/v1/api-user-create", json=body)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["success"] is True, data
        return Account(data["id"], body["email"], body["username"], password)

    return make
