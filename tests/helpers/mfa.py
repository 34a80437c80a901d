"""The second factor in the tests: its paths, and the CLI on the test's clock (operator
commands that wait: `relatch user mfa-reset`). Its notices: tests/helpers/notices.py."""

from __future__ import annotations

import pytest

from relatch.app import build
from relatch.cli import context
from relatch.services.context import Services
from tests.helpers.app import FakeClock

RECOVERY = "/v1/api/user/mfa/recovery-codes"
STATUS = "/v1/api/user/mfa"


def cli_on_clock(monkeypatch: pytest.MonkeyPatch, svc: Services, clock: FakeClock) -> None:
    """CLI commands build their services on the test's settings and clock."""
    monkeypatch.setattr(context, "_builder", [lambda _settings: build(svc.settings, clock=clock)])
