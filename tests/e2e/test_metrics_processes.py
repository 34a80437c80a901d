"""GET /metrics of a real `relatch serve --workers 2` (issue 13): whichever process answers
a scrape, it counts the requests both processes served (prometheus-client's multiprocess
mode, in a private folder `relatch serve` makes and removes itself). Started with the
generated dev key: the 32-byte rule refuses only a configured key that is short."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import relatch_server
from tests.helpers.metrics import samples, value

pytestmark = pytest.mark.e2e

MIN_REQUESTS = 20
MAX_REQUESTS = 2000
SCRAPES = 8


def counting_pids(folder: Path) -> set[str]:
    names = (p.name for p in folder.iterdir())
    return {m.group(1) for name in names if (m := re.match(r"counter_(\d+)\.db", name))}


def test_two_processes_count_together(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # where mkdtemp puts the metrics folder (TMPDIR)
    scratch.mkdir()
    with relatch_server(tmp_path, workers=2, RELATCH_SECRET_KEY=None, TMPDIR=str(scratch)) as srv:
        # The dev key was generated (the 32-byte rule applies to a configured key only).
        assert (tmp_path / "var" / "secret.key").is_file()
        (folder,) = scratch.iterdir()
        assert folder.name.startswith("relatch-metrics-")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700

        deadline = time.monotonic() + 20
        while httpx.get(f"{srv.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "not ready within 20 s"
            time.sleep(0.1)
        # Until both processes have answered some (each counts into a file named by its
        # pid; the second may start a little after the first).
        sent = 0
        while sent < MIN_REQUESTS or len(counting_pids(folder)) < 2:
            assert sent < MAX_REQUESTS, sorted(p.name for p in folder.iterdir())
            resp = httpx.get(f"{srv.url}/v1/api/user", timeout=5)  # a new connection each
            assert resp.status_code == 401
            sent += 1
        for _ in range(SCRAPES):
            text = httpx.get(f"{srv.url}/metrics", timeout=5).text
            found = samples(text)
            assert all(line.startswith(("#", "relatch_")) for line in text.splitlines())
            assert (
                value(
                    found,
                    "relatch_http_requests_total",
                    operation="getCurrentUser",
                    outcome="unauthenticated",
                )
                == sent
            )
            assert value(found, "relatch_mail_queue_depth") == 0  # read once, from the database
            assert value(found, "relatch_hashing_pool_busy") == 0
    # Stopped: the folder is gone with the server.
    assert list(scratch.iterdir()) == []
