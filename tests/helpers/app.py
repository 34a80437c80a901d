"""The running app as tests see it: settings, a fixed clock, an account (the mail it
sends: tests/helpers/notices.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from relatch.settings import Settings

# A reset code alone on its line, as the contract puts it in the mail (CRLF after SMTP).
CODE_LINE = re.compile(r"^([0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4})\r?$", re.MULTILINE)
# The subject of the activation mail names activation (the contract).
ACTIVATION = "activation code"
LINK_LINE = re.compile(r"^\S+(/reset-password\?token=\S+?)\r?$", re.MULTILINE)


@dataclass
class FakeClock:
    """Injected time: tests move it explicitly (boundaries: TTL valid, TTL+1 not)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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


@dataclass
class Account:
    id: int
    email: str
    username: str
    password: str
