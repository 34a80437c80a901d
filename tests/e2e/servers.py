"""Real processes for end-to-end tests: `relatch serve` and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.helpers.app import CODE_LINE

RELATCH = Path(sys.executable).parent / "relatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SMTPInbox:
    """What a real SMTP server received, as parsed messages."""

    messages: list[EmailMessage] = field(default_factory=list)
    port: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
            self._lock.notify_all()
        return "250 OK"

    def wait_for(self, to: str, subject_part: str, timeout: float = 20.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for msg in reversed(self.messages):
                    if msg["To"] == to and subject_part in str(msg["Subject"]):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail '{subject_part}' to {to} within {timeout}s")
                self._lock.wait(left)


@contextmanager
def smtp_server() -> Iterator[SMTPInbox]:
    inbox = SMTPInbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def mailed_code(self, to: str, subject_part: str, timeout: float = 20.0) -> str:
        """The code alone on a line of the newest mail to `to` whose subject holds
        `subject_part`, from the dev outbox (`RELATCH_MAIL_DIR`), waiting for it."""
        folder = Path(self.env["RELATCH_MAIL_DIR"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
            for path in paths:
                msg = message_from_bytes(path.read_bytes(), policy=policy.default)
                if msg["To"] == to and subject_part in str(msg["Subject"]):
                    body = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
                    found = CODE_LINE.search(body.get_content())
                    assert found, body.get_content()
                    return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no mail '{subject_part}' to {to} within {timeout}s")

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RELATCH), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.env["RELATCH_WORKDIR"],
        )


def server_env(workdir: Path, port: int, **extra: str | None) -> dict[str, str]:
    """The environment of a test server; an `extra` variable set to None is removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATCH_")}
    env.update(
        {
            "RELATCH_WORKDIR": str(workdir),
            "RELATCH_DATABASE_URL": f"sqlite:///{workdir / 'relatch.db'}",
            "RELATCH_SECRET_KEY": "e2e-secret-" + "x" * 32,
            "RELATCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "RELATCH_MAIL_DIR": str(workdir / "mail"),
            "RELATCH_ARGON2_MEMORY_KIB": "1024",
            "RELATCH_ARGON2_TIME_COST": "1",
            "RELATCH_WORKER_POLL_SECONDS": "0.1",
        }
    )
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


PORT_TAKEN = "address already in use"


def _start(
    workdir: Path, workers: int, extra: dict[str, str | None]
) -> tuple[subprocess.Popen[bytes], str, dict[str, str], Path]:
    """Start `relatch serve` and wait until it answers. A free port can be taken between
    free_port() and the bind (the suite runs in several processes): then a new port."""
    log = workdir / "server.log"
    for _ in range(3):
        port = free_port()
        env = server_env(workdir, port, **extra)
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(RELATCH), *serve], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                if PORT_TAKEN in log.read_text():
                    break  # another port
                raise AssertionError(f"server exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/v1/openapi.json", timeout=1).status_code == 200:
                    return proc, url, env, log
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
    raise AssertionError(f"no free port in 3 tries:\n{log.read_text()}")


@contextmanager
def relatch_server(workdir: Path, workers: int = 1, **extra: str | None) -> Iterator[Server]:
    """`relatch serve` as a real process on a free port; stopped and its log kept on exit."""
    proc, url, env, log = _start(workdir, workers, extra)
    try:
        yield Server(url=url, env=env, process=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
