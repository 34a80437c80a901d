"""The running app as tests see it: settings, a fixed clock, the dev outbox, an account."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import anyio

from relatch import workers as background
from relatch.mail.transports import MailDirTransport, list_messages
from relatch.services.context import Services
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
        return self._newest_line(address, CODE_LINE, "code alone on a line")

    def last_link(self, address: str) -> str:
        """The mailed link of the newest reset mail, as a path with its query."""
        return self._newest_line(address, LINK_LINE, "reset link")

    def last_activation_code(self, address: str) -> str:
        """The code of the newest activation mail (the same format as a reset code)."""
        return self._newest_line(address, CODE_LINE, "code alone on a line", ACTIVATION)

    def _newest_line(
        self, address: str, pattern: re.Pattern[str], what: str, subject: str = "reset code"
    ) -> str:
        self.run_workers()
        mails = [m for m in self.to(address) if subject in str(m["Subject"])]
        assert mails, f"no '{subject}' mail for {address}"
        body = mails[0].get_body(preferencelist=("plain",))
        assert body is not None
        found = pattern.search(body.get_content())
        assert found, f"no {what} in the mail"
        return found.group(1)


@dataclass
class Account:
    id: int
    email: str
    username: str
    password: str
