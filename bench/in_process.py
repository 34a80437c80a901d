"""What the in-process profiles (bench/profile_login.py, bench/profile_reset.py) share: a
Services on a fresh SQLite database with seeded accounts, the request metadata of one
client, and pyinstrument's call tree of a loop."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import servers
from relatch.app import build
from relatch.core.meta import RequestMeta
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage.db import make_engine

ACCOUNTS = 1000
META = RequestMeta(client_ip="127.0.0.1", user_agent="bench", request_id="0123456789abcdef")


def arguments(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--pyinstrument", action="store_true", help="print the call tree too")
    return ap.parse_args()


def services(name: str) -> Services:
    """Services as `relatch serve` builds them (the bench's settings), on a new SQLite
    database holding ACCOUNTS accounts u0@example.com ... (ids 1 ...)."""
    work = Path(tempfile.mkdtemp(prefix=f"relatch-{name}-"))
    os.environ.update(servers.relatch_env(work, 1, f"sqlite:///{work / 'relatch.db'}"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    servers.add_accounts(engine, "u", ACCOUNTS)
    engine.dispose()
    return build(settings)


def call_tree(loop: Callable[[], None]) -> str:
    """pyinstrument's tree of one run of `loop` (pyinstrument is in no environment:
    `.venv-bench/bin/pip install pyinstrument` first)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    loop()
    profiler.stop()
    return str(profiler.output_text(unicode=True, color=False, show_all=False))
