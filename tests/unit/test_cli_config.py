"""`relatch config` and the start-up checks of `relatch serve` (issue 13), through the CLI:
secrets masked, a bad value named (never echoed) with exit 2, a short secret key refused.
(`relatch serve` with the generated dev key: tests/e2e/test_metrics_processes.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relatch.app import cli as cli_app

SECRETS = {
    "RELATCH_SECRET_KEY": "k3y-" + "s" * 40,
    "RELATCH_SECRET_KEY_FALLBACKS": "old-key-one-" + "o" * 32 + ",old-key-two-" + "t" * 32,
    "RELATCH_SMTP_URL": "smtp://mailer:smtp-pa55@smtp.example.internal:587",
    "RELATCH_DATABASE_URL": "postgresql://relatch:db-pa55@db.example.internal:5432/relatch",
    "RELATCH_REDIS_URL": "redis://:redis-pa55@cache.example.internal:6379/0",
}
# What must never be printed: each secret, and each part of one.
NEVER = ["s" * 40, "o" * 32, "t" * 32, "smtp-pa55", "db-pa55", "redis-pa55"]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env; a var/ of its own
    for name in list(os.environ):
        if name.startswith("RELATCH_"):
            monkeypatch.delenv(name)
    return CliRunner()


def test_config_prints_every_setting_with_secrets_masked(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RELATCH_METRICS", "off")
    monkeypatch.setenv("RELATCH_LOG_FORMAT", "json")

    done = runner.invoke(cli_app, ["config"])

    assert done.exit_code == 0, done.output
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert lines["RELATCH_SECRET_KEY"] == "*** (44 bytes)"
    assert lines["RELATCH_SECRET_KEY_FALLBACKS"] == "*** (2 keys)"
    assert lines["RELATCH_SMTP_URL"] == "smtp://mailer:***@smtp.example.internal:587"
    assert lines["RELATCH_DATABASE_URL"] == (
        "postgresql://relatch:***@db.example.internal:5432/relatch"
    )
    assert lines["RELATCH_REDIS_URL"] == "redis://:***@cache.example.internal:6379/0"
    assert lines["RELATCH_METRICS"] == "off"
    assert lines["RELATCH_LOG_FORMAT"] == "json"
    assert lines["RELATCH_RESET_CODE_TTL"] == "600"
    assert lines["RELATCH_TRUSTED_PROXIES"] == "unset"
    for secret in NEVER:
        assert secret not in done.output
    # Printing the configuration writes nothing (no key generated, no database made).
    assert not Path("var").exists()


def test_config_without_a_key_says_it_will_be_generated(runner: CliRunner) -> None:
    done = runner.invoke(cli_app, ["config"])
    assert done.exit_code == 0, done.output
    assert "RELATCH_SECRET_KEY=unset (generated into var/secret.key)" in done.stdout.splitlines()
    assert not Path("var").exists()


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("RELATCH_RESET_CODE_TTL", "3600", "less than or equal to 600"),
        ("RELATCH_RESET_CODE_TTL", "hunter2-not-a-number", "valid integer"),
        ("RELATCH_LIMIT_RESET_PER_IP", "3/15x", "use COUNT/WINDOW like 3/15m, or off"),
        ("RELATCH_LOG_FORMAT", "xml", "'text' or 'json'"),
        ("RELATCH_METRICS", "maybe", "valid boolean"),
    ],
)
@pytest.mark.parametrize("command", ["config", "serve"])
def test_a_bad_value_is_named_and_exits_2(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    variable: str,
    value: str,
    reason: str,
) -> None:
    monkeypatch.setenv(variable, value)

    done = runner.invoke(cli_app, [command])

    assert done.exit_code == 2, done.output
    assert done.stdout == ""
    assert done.stderr.startswith("error: invalid configuration\n")
    assert f"  {variable}: " in done.stderr and reason in done.stderr
    assert "hunter2" not in done.stderr  # the value is never echoed: it may be a secret
    assert not Path("var").exists()  # serve stopped before the database or the key


@pytest.mark.parametrize("key", ["", "short", "x" * 31])
@pytest.mark.parametrize("command", ["config", "serve"])
def test_a_secret_key_under_32_bytes_is_refused(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str, key: str
) -> None:
    monkeypatch.setenv("RELATCH_SECRET_KEY", key)

    done = runner.invoke(cli_app, [command])

    assert done.exit_code == 2, done.output
    size = len(key)
    assert f"error: RELATCH_SECRET_KEY is {size} bytes long; it must be at least 32" in (
        done.stderr
    )
    assert not Path("var").exists()


def test_32_bytes_are_enough(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELATCH_SECRET_KEY", "é" * 16)  # 16 characters, 32 bytes in UTF-8
    done = runner.invoke(cli_app, ["config"])
    assert done.exit_code == 0, done.output
    assert "RELATCH_SECRET_KEY=*** (32 bytes)" in done.stdout.splitlines()
