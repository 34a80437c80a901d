"""What the services need from the outside, as Protocols (clock, mail rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from relatch.core.limits import Bucket
from relatch.storage.outbox import MailRenderer

__all__ = ["Clock", "LimitStore", "MailRenderer"]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


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
