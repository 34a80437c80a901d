from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relatch.core.reset_flow import CodeFacts, CodeState, may_try, state

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def facts(**kw: object) -> CodeFacts:
    base: dict[str, object] = {
        "expires_at": NOW + timedelta(seconds=600),
        "attempts": 0,
        "consumed_at": None,
        "revoked_at": None,
    }
    base.update(kw)
    return CodeFacts(**base)  # type: ignore[arg-type]


def test_live_until_expiry() -> None:
    code = facts()
    assert state(code, NOW + timedelta(seconds=599), 5) is CodeState.LIVE
    assert state(code, NOW + timedelta(seconds=600), 5) is CodeState.EXPIRED


def test_fifth_try_allowed_sixth_refused() -> None:
    assert may_try(facts(attempts=4), NOW, 5)
    assert not may_try(facts(attempts=5), NOW, 5)
    assert state(facts(attempts=5), NOW, 5) is CodeState.EXHAUSTED


def test_consumed_and_revoked_win_over_everything() -> None:
    assert state(facts(consumed_at=NOW, attempts=9), NOW, 5) is CodeState.CONSUMED
    assert state(facts(revoked_at=NOW), NOW, 5) is CodeState.REVOKED
