"""`relatch backup FILE` (issue 13): a backup taken while a server serves writes is a whole
database; restored to a new file it serves, and an account made before it signs in."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from relatch.app import build, create_app
from relatch.app import cli as cli_app
from tests.e2e.servers import relatch_server
from tests.helpers.api import login
from tests.helpers.app import test_settings as settings_for

pytestmark = pytest.mark.e2e

PASSWORD = "lantern over the harbour"


def sign_up(base: str, n: int) -> None:
    body = {
        "name": f"N {n}",
        "username": f"backup{n:04d}",
        "email": f"backup{n}@example.com",
        "password": PASSWORD,
        "privacyPolicy": True,
    }
    resp = httpx.post(f"{base}/v1/api-user-create", json=body, timeout=30)
    assert resp.json()["success"] is True, resp.text


def test_backup_while_serving_then_restore_and_sign_in(tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    serving.mkdir()
    with relatch_server(serving, RELATCH_LIMIT_SIGNUP_PER_IP="off") as srv:
        sign_up(srv.url, 0)
        stop = threading.Event()
        written = [0]

        def writer() -> None:  # sign-ups keep writing while the backup runs
            while not stop.is_set():
                written[0] += 1
                sign_up(srv.url, written[0])

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            copy = tmp_path / "backup.db"
            made = srv.cli("backup", str(copy))
        finally:
            stop.set()
            thread.join(30)
    assert made.returncode == 0, made.stderr
    assert copy.stat().st_mode & 0o077 == 0
    assert written[0] > 0

    restored = tmp_path / "restored" / "relatch.db"
    restored.parent.mkdir()
    shutil.copyfile(copy, restored)
    svc = build(settings_for(tmp_path, f"sqlite:///{restored}"))
    try:
        with TestClient(create_app(svc=svc)) as client:
            assert login(client, "backup0000", PASSWORD)["success"] is True
            assert login(client, "backup0000", "not the password")["success"] is False
    finally:
        svc.close()


def test_refusals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PostgreSQL is pointed at pg_dump; an existing file is never overwritten."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELATCH_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("RELATCH_DATABASE_URL", "postgresql://relatch@db.invalid:5432/relatch")
    result = CliRunner().invoke(cli_app, ["backup", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "pg_dump" in result.output
    assert not (tmp_path / "x.db").exists()

    monkeypatch.setenv("RELATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'live.db'}")
    assert CliRunner().invoke(cli_app, ["migrate"]).exit_code == 0
    earlier = tmp_path / "earlier.db"
    earlier.write_bytes(b"an earlier backup")
    result = CliRunner().invoke(cli_app, ["backup", str(earlier)])
    assert result.exit_code == 1 and "exists" in result.output
    assert earlier.read_bytes() == b"an earlier backup"
