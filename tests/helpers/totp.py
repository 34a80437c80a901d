"""Turning the TOTP second factor on, and its current token under the test clock."""

from __future__ import annotations

from fastapi.testclient import TestClient

from relatch.core import totp
from tests.helpers.app import FakeClock

MFA = "/v1/api/user/mfa/totp"


def token(clock: FakeClock, key: str) -> str:
    return totp.token_at(key, int(clock.now.timestamp()))


def enable(client: TestClient, clock: FakeClock, headers: dict[str, str]) -> tuple[str, list[str]]:
    made = client.post(f"{MFA}/create-key", headers=headers).json()
    assert made["success"] is True, made
    assert made["url"].startswith("otpauth://totp/") and f"secret={made['key']}" in made["url"]
    body = {"key": made["key"], "totpToken": token(clock, made["key"])}
    done = client.post(f"{MFA}/set-key", json=body, headers=headers).json()
    assert done["success"] is True, done
    assert len(done["recoveryCodes"]) == 10 and len(set(done["recoveryCodes"])) == 10
    return made["key"], done["recoveryCodes"]
