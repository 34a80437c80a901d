"""What the services need from the outside, as Protocols (clock, mail rendering, the
password hasher, the rate-limit counters). Built in relatch/app.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from relatch.core.limits import Bucket
from relatch.storage.outbox import MailRenderer

__all__ = ["Clock", "LimitStore", "MailRenderer", "PasswordHasher"]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class LimitStore(Protocol):
    """Shared rate-limit counters (database or Redis): see services/limits.py."""

    def acquire(
        self,
        buckets: Sequence[Bucket],
        filled: list[Bucket] | None = None,
        within: Session | None = None,
    ) -> list[Bucket]:
        """Count one hit in every bucket, or none if any is full; returns the full ones.
        `filled`, when given, receives the buckets this hit brought to their limit.
        `within`: the caller's write transaction, which a database store counts in (and
        takes its hits back in when any bucket is full, so the caller may commit the rest);
        other stores ignore it."""
        ...

    def release(self, buckets: Sequence[Bucket], within: Session | None = None) -> None:
        """Give one hit back in each bucket; `within` as for `acquire`."""
        ...

    def prune(self, now: int) -> int:
        """Drop counters of windows ended by `now` (epoch seconds)."""
        ...

    def close(self) -> None: ...


class PasswordHasher(Protocol):
    """argon2id behind a bounded admission queue (infra/hashing_pool.py): awaited, so no
    request thread waits on a hash; RateLimited (429) at once when the queue is full."""

    async def hash(self, password: str, *, follow_up: bool = False) -> str:
        """`follow_up`: a later hash of an operation already admitted, never refused."""
        ...

    async def verify(self, stored: str | None, password: str, *, follow_up: bool = False) -> bool:
        """False for None (a dummy hash is verified: same time as a real account)."""
        ...

    def needs_rehash(self, stored: str) -> bool: ...

    def refuse_if_full(self) -> None:
        """RateLimited now if a hash would be refused now (checked before the work that
        leads to one)."""
        ...

    def close(self) -> None: ...
