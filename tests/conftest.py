"""Shared fixtures: a real database per test (SQLite file, or a PostgreSQL schema) migrated
once per session and handed out per test (tests/helpers/database.py), a fixed clock, fast
argon2 parameters, and the ASGI app with its workers driven by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relatch.app import build, create_app
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from tests.e2e.servers import SMTPInbox, smtp_server
from tests.helpers.activation import vouch
from tests.helpers.app import CODE_LINE, Account, FakeClock, test_settings
from tests.helpers.database import MIGRATED, PG_ENV, close_templates, database
from tests.helpers.notices import Mailbox, SMTPMailbox

# Re-exported: tests import these from here.
__all__ = ["CODE_LINE", "PG_ENV", "Account", "FakeClock", "Mailbox", "database", "test_settings"]

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", autouse=True)
def _database_templates() -> Iterator[None]:
    """Drop the session's PostgreSQL schemas and template file when the suite ends."""
    yield
    close_templates()


@pytest.fixture(params=DATABASES)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_kind: str, tmp_path: Path) -> Iterator[str]:
    """The test's database. Already migrated when the test uses `svc` (from the session's
    template: no migration per test); empty otherwise, for tests that migrate it
    themselves (the migration tests)."""
    with database(db_kind, tmp_path, migrated="svc" in request.fixturenames) as url:
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
    if settings.database_url not in MIGRATED:  # a database the template did not make
        migrate.upgrade(services.engine)
    yield services
    services.close()


@pytest.fixture
def mailbox(svc: Services) -> Mailbox:
    return Mailbox(svc)


@pytest.fixture
def smtp_inbox() -> Iterator[SMTPInbox]:
    """A real SMTP server (aiosmtpd) for one test (tests/e2e/conftest.py: one per module)."""
    with smtp_server() as inbox:
        yield inbox


@pytest.fixture
def smtp_mailbox(svc: Services, smtp_inbox: SMTPInbox) -> SMTPMailbox:
    """The test's mail as that server received it; a module that reads its notices there
    overrides `mailbox` with this one."""
    return SMTPMailbox(svc, smtp_inbox)


@pytest.fixture
def client(svc: Services) -> Iterator[TestClient]:
    app = create_app(svc=svc)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_account(client: TestClient, svc: Services) -> Any:
    """createUser over HTTP; the account is then activated (`vouch`) unless
    `activated=False`: most tests make credentials, which only activated accounts may."""
    counter = iter(range(1, 10_000))

    def make(
        password: str = "correct horse battery", *, activated: bool = True, **fields: Any
    ) -> Account:
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
        if activated:
            vouch(svc, data["id"])
        return Account(data["id"], body["email"], body["username"], password)

    return make


@pytest.fixture
def cli(svc: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """The `relatch` CLI in-process, on the test's database, key and dev outbox."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("RELATCH_DATABASE_URL", svc.settings.database_url)
    monkeypatch.setenv("RELATCH_SECRET_KEY", svc.settings.secret.decode())
    monkeypatch.setenv("RELATCH_MAIL_DIR", str(svc.settings.mail_dir))
    monkeypatch.setenv("RELATCH_REDIS_URL", "")
    return CliRunner()
