"""Files with secrets are private (issue 8): 0600 files, 0700 folders.

The dev outbox's `.eml` files hold live reset codes, the SQLite database holds password
hashes and digests, `var/secret.key` signs everything; all used to be created 0644 in a
0755 `var/` (the key excepted). `relatch serve` and every CLI command run with umask 077,
and the places that create these files set the mode themselves, so the result does not
depend on the umask of whoever starts Relatch.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import text

from relatch.mail.transports import MailDirTransport
from relatch.settings import Settings
from relatch.storage.db import make_engine
from tests.e2e.servers import relatch_server
from tests.helpers.mails import as_mail

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022, under which files would be world-readable without explicit modes."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_served_database_outbox_and_folders_are_private(tmp_path: Path, usual_umask: None) -> None:
    var = tmp_path / "var"
    with relatch_server(
        tmp_path,
        RELATCH_DATABASE_URL=f"sqlite:///{var / 'relatch.db'}",
        RELATCH_MAIL_DIR=str(var / "mail"),
    ) as server:
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        assert "Umask:\t0077" in status
        created = httpx.post(
            f"{server.url}/v1/api-user-create",
            json={
                "name": "Modes",
                "username": "modes",
                "email": "modes@example.com",
                "password": "private files only",
                "privacyPolicy": True,
            },
            timeout=10,
        )
        assert created.json()["success"] is True, created.text
        asked = httpx.post(
            f"{server.url}/v1/api-user-request-reset-password",
            json={"email": "modes@example.com"},
            timeout=10,
        )
        assert asked.status_code == 200
        deadline = time.monotonic() + 20
        while not list((var / "mail").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        mails = list((var / "mail").glob("*.eml"))
        assert mails, "no mail written"

        assert mode(var) == 0o700
        assert mode(var / "mail") == 0o700
        assert all(mode(m) == 0o600 for m in mails)
        for name in ("relatch.db", "relatch.db-wal", "relatch.db-shm"):
            assert mode(var / name) == 0o600, name


def test_outbox_modes_do_not_depend_on_the_umask(tmp_path: Path, usual_umask: None) -> None:
    folder = tmp_path / "var" / "mail"
    message = EmailMessage()
    message["To"] = "someone@example.com"
    message.set_content("Your reset code is ...")
    anyio.run(MailDirTransport(folder).send, as_mail(message))
    assert mode(folder) == 0o700
    (mail,) = folder.iterdir()
    assert mode(mail) == 0o600


def test_database_modes_do_not_depend_on_the_umask(tmp_path: Path, usual_umask: None) -> None:
    db = tmp_path / "var" / "relatch.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert mode(db.parent) == 0o700
        for path in (db, db.with_name("relatch.db-wal"), db.with_name("relatch.db-shm")):
            assert mode(path) == 0o600, path.name
    finally:
        engine.dispose()


def test_generated_key_folder_is_private(tmp_path: Path, usual_umask: None) -> None:
    key = tmp_path / "var" / "secret.key"
    settings = Settings(_env_file=None, secret_key=None, secret_key_file=key)  # type: ignore[call-arg]
    assert settings.secret
    assert mode(key.parent) == 0o700
    assert mode(key) == 0o600
