"""The reset code's lifecycle as named states; the diagram is in reset_flow.md beside this file."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class CodeState(enum.Enum):
    LIVE = "live"  # issued, unexpired, tries left
    EXPIRED = "expired"  # TTL passed
    EXHAUSTED = "exhausted"  # max wrong tries reached (brute force)
    CONSUMED = "consumed"  # used by a successful reset (replay)
    REVOKED = "revoked"  # replaced by a newer code, or the password changed


@dataclass(frozen=True)
class CodeFacts:
    expires_at: datetime
    attempts: int
    consumed_at: datetime | None
    revoked_at: datetime | None


def state(code: CodeFacts, now: datetime, max_attempts: int) -> CodeState:
    if code.consumed_at is not None:
        return CodeState.CONSUMED
    if code.revoked_at is not None:
        return CodeState.REVOKED
    if now >= code.expires_at:
        return CodeState.EXPIRED
    if code.attempts >= max_attempts:
        return CodeState.EXHAUSTED
    return CodeState.LIVE


def may_try(code: CodeFacts, now: datetime, max_attempts: int) -> bool:
    """Whether one more try may be counted (the count comes before the comparison)."""
    return state(code, now, max_attempts) is CodeState.LIVE
