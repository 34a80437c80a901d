"""Wrong TOTP tokens count as failures: 6 digits must not be open to brute force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.settings import Settings
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.helpers.api import session_headers
from tests.helpers.totp import enable, token


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, limit_failures_per_account="5/15m")


def test_wrong_tokens_hit_the_failure_limit(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct = make_account()
    key, _ = enable(client, clock, session_headers(client, acct))
    clock.advance(30)
    right = token(clock, key)
    wrong = [f"{n:06d}" for n in range(10) if f"{n:06d}" != right]
    body = {"username": acct.username, "password": acct.password}
    statuses = [
        client.post("/v1/api-login", json={**body, "totpToken": t}).status_code for t in wrong[:6]
    ]
    assert statuses == [200] * 5 + [429]  # 5 per 15 minutes: the 6th try is refused
    limited = client.post("/v1/api-login", json={**body, "totpToken": right})
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    clock.advance(15 * 60)
    assert client.post("/v1/api-login", json={**body, "totpToken": token(clock, key)}).json()[
        "success"
    ]
