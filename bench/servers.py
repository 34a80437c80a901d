"""The servers under test, started by the bench itself on CPU 0, and what they are seeded
with: Relatch (`relatch serve` from the project's .venv, production defaults) and the
peer (fastapi-users, bench/peer/app.py, from the bench environment).

Seeding writes straight into the database, as the e2e tests do (tests/e2e/backlog.py):
accounts share one precomputed password hash, reset codes are made with the server's key.
"""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from pydantic import SecretStr
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Engine

from bench.load import SERVER_CPU
from relatch.core import codes, identity, keyed
from relatch.core.hashing import Argon2Params, Hasher
from relatch.settings import Settings
from relatch.storage.db import make_engine
from relatch.storage.models import OutboxMessage, ResetCode, ResetRequest, User

ROOT = Path(__file__).resolve().parent.parent
# Relatch runs as shipped: from the project's own environment (`make install`).
RELATCH = ROOT / ".venv" / "bin" / "relatch"
SECRET_KEY = "bench-secret-" + "k" * 40
PASSWORD = "quiet harbour lantern 42"  # noqa: S105 (the bench accounts' password)
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Production defaults, except the ceilings that would refuse the bench's own traffic (all
# of it comes from one address, 127.0.0.1): reset requests for one address and from one
# IP, wrong codes from one IP (the timing row), connections from one client (c=128 and
# the 1,000 concurrent resets). Metrics and the access log stay as shipped.
RAISED = {
    "RELATCH_LIMIT_RESET_PER_ADDRESS": "100000000/1h",
    "RELATCH_LIMIT_RESET_PER_IP": "100000000/1h",
    "RELATCH_LIMIT_RESET_PER_KNOWN_CLIENT": "100000000/1h",
    "RELATCH_LIMIT_FAILURES_PER_IP": "100000000/1h",
    "RELATCH_MAX_CONNECTIONS": "4000",
    "RELATCH_MAX_CONNECTIONS_PER_CLIENT": "4000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


@dataclass
class Server:
    name: str
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    cmd: list[str] = field(default_factory=list)
    log: Path | None = None

    def restart(self) -> None:
        """Stop the process (whatever it still had queued dies with it) and start it again
        on the same port, database and environment."""
        _stop(self.proc)
        assert self.log is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        _wait_ready(self.proc, f"{self.base}/healthz", self.log)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> tuple[int, int]:
        """(the largest RSS of one process, the PSS of the whole tree): with --workers N
        the processes share pages, which a sum of RSS would count N times."""
        largest = pss = 0
        for p in self.tree():
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                info = p.memory_full_info()
                largest = max(largest, info.rss)
                pss += getattr(info, "pss", info.rss)
        return largest, pss


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def relatch_env(workdir: Path, port: int, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATCH_")}
    env.update(
        RELATCH_DATABASE_URL=database_url,
        RELATCH_SECRET_KEY=SECRET_KEY,
        RELATCH_MAIL_DIR=str(workdir / "mail"),
        RELATCH_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **RAISED,
    )
    env.update(extra)
    return env


@contextmanager
def relatch(
    workdir: Path, database_url: str | None = None, workers: int = 1, **extra: str
) -> Iterator[Server]:
    """`taskset -c 0 relatch serve` (migrates first), its log in workdir/server.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = database_url or f"sqlite:///{workdir / 'relatch.db'}"
    env = relatch_env(workdir, port, url, **extra)
    cmd = ["taskset", "-c", SERVER_CPU, str(RELATCH), "serve", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    log = workdir / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, f"{base}/healthz", log)
        yield Server("relatch", base, proc, workdir, env, url)
    finally:
        _stop(proc)


@contextmanager
def peer(workdir: Path) -> Iterator[Server]:
    """`taskset -c 0 uvicorn app:app` (bench/peer), uvicorn's defaults (access log on)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, PEER_DATABASE=str(workdir / "peer.db"))
    cmd = [
        "taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn", "app:app",
        "--app-dir", str(ROOT / "bench" / "peer"), "--port", str(port),
    ]  # fmt: skip
    log = workdir / "peer.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    server = Server("peer", base, proc, workdir, env, str(workdir / "peer.db"), cmd, log)
    try:
        _wait_ready(proc, f"{base}/healthz", log)
        yield server
    finally:
        _stop(server.proc)


# --- PostgreSQL ------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A database of the bench's own on BENCH_PG_URL's server, dropped after; None when
    PostgreSQL is not reachable (the PostgreSQL column then says so)."""
    import psycopg

    name = f"relatch_bench_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
        yield None
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- seeding Relatch -------------------------------------------------------------------


def relatch_params() -> Argon2Params:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    return Argon2Params(s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism)


_HASH: dict[str, str] = {}


def shared_hash() -> str:
    """One argon2id hash at the shipped parameters, made once, stored for every account."""
    if "h" not in _HASH:
        _HASH["h"] = Hasher(relatch_params()).hash(PASSWORD)
    return _HASH["h"]


def engine_of(server: Server) -> Engine:
    return make_engine(server.database_url)


def add_accounts(engine: Engine, prefix: str, count: int, start: int = 0) -> list[str]:
    """`count` accounts in bulk (executemany in chunks), activated; their addresses."""
    now = datetime.now(UTC)
    stored = shared_hash()
    emails: list[str] = []
    chunk = 20_000
    with engine.begin() as conn:
        for lo in range(start, start + count, chunk):
            rows = []
            for n in range(lo, min(lo + chunk, start + count)):
                email = f"{prefix}{n}@example.com"
                username = f"{prefix}{n}"
                emails.append(email)
                rows.append(
                    {
                        "email": email,
                        "email_key": identity.email_key(email),
                        "username": username,
                        "username_key": identity.username_key(username),
                        "name": f"Bench {n}",
                        "password_hash": stored,
                        "credential_generation": 0,
                        "email_verified": True,
                        "created_at": now,
                    }
                )
            conn.execute(insert(User), rows)
    return emails


def account_ids(engine: Engine, emails: list[str]) -> dict[str, int]:
    keys = {identity.email_key(e): e for e in emails}
    out: dict[str, int] = {}
    with engine.connect() as conn:
        items = list(keys)
        for lo in range(0, len(items), 5000):
            part = items[lo : lo + 5000]
            for uid, key in conn.execute(
                select(User.id, User.email_key).where(User.email_key.in_(part))
            ):
                out[keys[key]] = int(uid)
    return out


def add_codes(engine: Engine, emails: list[str]) -> dict[str, str]:
    """A live reset code for each address, made the way the worker makes one (a keyed
    digest with the server's key); the codes, by address."""
    keys = Settings(_env_file=None, secret_key=SecretStr(SECRET_KEY)).keys  # type: ignore[call-arg]
    ids = account_ids(engine, emails)
    now = datetime.now(UTC)
    made: dict[str, str] = {}
    rows = []
    for email in emails:
        code = codes.generate()
        made[email] = code
        uid = ids[email]
        rows.append(
            {
                "user_id": uid,
                "digest": keyed.digest(keys, keyed.RESET_CODE, uid, code),
                "link_digest": keyed.digest(keys, keyed.RESET_LINK, uid, codes.link_secret()),
                "created_at": now,
                "expires_at": now + timedelta(seconds=600),
                "attempts": 0,
                "known_attempts": 0,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(ResetCode), rows)
    return made


def add_outbox(engine: Engine, count: int) -> None:
    """A backlog of `count` mails due now, in one transaction (tests/e2e/backlog.py)."""
    now = datetime.now(UTC)
    rows = [
        {
            "template": "reset_code",
            "recipient": f"backlog{n}@example.com",
            "subject": f"Backlog mail {n}",
            "body_text": f"Backlog mail {n}\n",
            "body_html": f"<p>Backlog mail {n}</p>",
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage), rows)


def outbox_pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status != "sent")
            ).scalar_one()
        )


def clear_work(engine: Engine) -> None:
    """Drop queued requests and mails left by earlier rows (they would share the worker)."""
    with engine.begin() as conn:
        conn.execute(delete(ResetRequest))
        conn.execute(delete(OutboxMessage).where(OutboxMessage.status != "sent"))


def add_requests(engine: Engine, emails: list[str]) -> None:
    now = datetime.now(UTC)
    rows = [
        {"email": e, "requested_at": now, "client_ip": "127.0.0.1", "request_id": uuid.uuid4().hex}
        for e in emails
    ]
    with engine.begin() as conn:
        conn.execute(insert(ResetRequest), rows)


def requests_left(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ResetRequest)).scalar_one())


def work_waiting(engine: Engine) -> int:
    """Reset requests not yet decided (dead letters aside) and mail still to send."""
    with engine.connect() as conn:
        requests = conn.execute(
            select(func.count()).select_from(ResetRequest).where(ResetRequest.failed_at.is_(None))
        ).scalar_one()
        mail = conn.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "sending")))
        ).scalar_one()
    return int(requests) + int(mail)


def analyze(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


# --- seeding the peer -----------------------------------------------------------------


def peer_accounts(server: Server, prefix: str, count: int, hashed: str) -> list[tuple[str, str]]:
    """(id, email) of `count` peer accounts inserted into its table (one shared hash)."""
    made = [(str(uuid.uuid4()), f"{prefix}{n}@example.com") for n in range(count)]
    with sqlite3.connect(server.database_url) as db:
        db.executemany(
            'INSERT INTO "user" (id, email, hashed_password, is_active, is_superuser, '
            "is_verified) VALUES (?, ?, ?, 1, 0, 1)",
            [(uid, email, hashed) for uid, email in made],
        )
    return made


def peer_hash() -> str:
    from fastapi_users.password import PasswordHelper

    return PasswordHelper().hash(PASSWORD)


def peer_tokens(ids: list[str], hashed: str) -> list[str]:
    """Reset tokens as the peer's forgot_password makes them: a JWT with the account's id
    and a hash of its stored hash (one hash serves all: they share `hashed`)."""
    from fastapi_users.jwt import generate_jwt
    from fastapi_users.password import PasswordHelper

    fgpt = PasswordHelper().hash(hashed)
    secret = "peer-bench-secret-" + "x" * 32
    return [
        generate_jwt(
            {"sub": uid, "password_fgpt": fgpt, "aud": "fastapi-users:reset"}, secret, 3600
        )
        for uid in ids
    ]


class RssSampler:
    """Peak resident memory of a server's processes, sampled every 20 ms: the largest RSS
    of one process, and the PSS of the whole tree."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            largest, tree = self.server.memory()
            self.peak = max(self.peak, largest)
            self.peak_tree = max(self.peak_tree, tree)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
