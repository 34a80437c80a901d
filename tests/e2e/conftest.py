"""Fixtures shared by the end-to-end tests: a real SMTP server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.servers import SMTPInbox, smtp_server


@pytest.fixture(scope="module")
def inbox() -> Iterator[SMTPInbox]:
    with smtp_server() as box:
        yield box
