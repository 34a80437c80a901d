"""A PostgreSQL server of the test's own, to stop and start at will: `initdb` into a
temporary folder, `pg_ctl start` on a free port, stopped and removed afterwards.

Never the machine's shared server (the one RELATCH_TEST_DATABASE_URL names): other tests
and other people use it. PostgreSQL refuses to run as root, so under root the server runs
as the `postgres` system user, in a folder that user owns. Without the binaries (or such a
user) the test is skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import free_port

SERVICE_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin (Debian, Ubuntu), else initdb on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version, reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _version(initdb: str) -> int:
    part = Path(initdb).parent.parent.name
    return int(part) if part.isdigit() else 0


@dataclass
class OwnPostgres:
    bindir: Path
    folder: Path  # data/, the socket and the log
    port: int
    user: str | None  # the system user the server runs as (None: this process's own)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user, "group": self.user, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.folder,
            **extra,
        )

    def ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.log), "-o", options,
            "-w", "-t", "20", *args,
        )  # fmt: skip
        assert done.returncode == 0, f"pg_ctl {args}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        """Fast shutdown: sessions are ended (their clients see the connection go)."""
        self.ctl("-m", "fast", "stop")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    user = SERVICE_USER if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="relatch-pg-"))
    try:
        if user is not None:
            try:
                shutil.chown(folder, user, user)
            except LookupError:
                pytest.skip(f"PostgreSQL refuses root and there is no '{user}' user to run it")
        pg = OwnPostgres(bindir, folder, free_port(), user)
        made = pg._run(
            "initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
            "--no-sync", "--no-instructions", "-E", "UTF8",
        )  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"initdb could not run here: {made.stderr.strip()[-300:]}")
        # A port taken between free_port() and the server's bind (the suite runs in two
        # processes): try another port before giving up, as tests/e2e/servers.py does.
        for attempt in range(3):
            try:
                pg.start()
                break
            except AssertionError as exc:
                if attempt == 2:
                    pytest.skip(f"PostgreSQL could not start here: {exc}"[:400])
                pg.port = free_port()
        try:
            yield pg
        finally:
            pg._run("pg_ctl", "-D", str(folder / "data"), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
