"""What the services need from the outside, as Protocols (clock, mail rendering)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from relatch.core.limits import Bucket


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class MailRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text body, html body) of one message."""
        ...


class LimitStore(Protocol):
    """Shared rate-limit counters (database or Redis): see services/limits.py."""

    def acquire(self, buckets: Sequence[Bucket]) -> list[Bucket]:
        """Count one hit in every bucket, or none if any is full; returns the full ones."""
        ...

    def release(self, buckets: Sequence[Bucket]) -> None:
        """Give one hit back in each bucket."""
        ...

    def prune(self, now: int) -> int:
        """Drop counters of windows ended by `now` (epoch seconds)."""
        ...

    def close(self) -> None: ...
