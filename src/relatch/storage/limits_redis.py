"""The Redis backend of the limiter (RELATCH_REDIS_URL), shared by every process.

Atomicity: one Lua script checks every bucket and increments them all or none, so
concurrent requests from any number of processes cannot overshoot a limit (Redis runs a
script without interleaving other commands). Inside a database transaction (`within`),
a hit is taken back if that transaction rolls back, and a give-back waits for its commit.
Bucket keys carry the window start computed from the injected clock, so correctness never
depends on Redis' own clock; the TTL only cleans up, and is relative so it also holds when
the clock is fixed in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy.orm import Session

from relatch.core.errors import RateLimited
from relatch.core.limits import Bucket
from relatch.storage.commit_hooks import after_commit, after_rollback

log = logging.getLogger(__name__)
OUTAGE_RETRY = 5  # seconds a client is asked to wait while Redis is unreachable

# KEYS: bucket keys. ARGV: limits, then TTLs. Returns the 1-based indices of the full
# buckets (nothing counted), else the negated indices of those the hit brought to their limit.
_ACQUIRE = """
local n = #KEYS
local full = {}
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if c >= tonumber(ARGV[i]) then table.insert(full, i) end
end
if #full > 0 then return full end
local filled = {}
for i = 1, n do
  local c = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[n + i])
  if c == tonumber(ARGV[i]) then table.insert(filled, -i) end
end
return filled
"""

_RELEASE = """
for i = 1, #KEYS do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if c > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""


class RedisLimitStore:
    def __init__(self, url: str, prefix: str) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self.prefix = prefix
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)

    def _key(self, b: Bucket) -> str:
        return f"{self.prefix}{b.key}:{b.seconds}:{b.start}"

    def acquire(
        self,
        buckets: Sequence[Bucket],
        filled: list[Bucket] | None = None,
        within: object = None,
    ) -> list[Bucket]:
        if not buckets:
            return []
        keys = [self._key(b) for b in buckets]
        # TTL: the window plus a minute of slack, counted from now on the Redis side.
        args = [b.limit for b in buckets] + [b.seconds + 60 for b in buckets]
        try:
            found = [int(i) for i in self._acquire(keys=keys, args=args)]
        except redis.RedisError as exc:
            # Fail closed: with the counters unreachable, letting every guess through would
            # switch brute-force protection off; a 429 keeps the contract's shape (no 5xx).
            log.error("limit store unreachable: %s", type(exc).__name__)
            raise RateLimited(OUTAGE_RETRY) from exc
        if filled is not None:
            filled.extend(buckets[-i - 1] for i in found if i < 0)
        full = [buckets[i - 1] for i in found if i > 0]
        if not full and isinstance(within, Session):
            # Counted outside the caller's transaction: taken back if it rolls back, as the
            # database stores' hits are (a group commit retried item by item would
            # otherwise count each request twice, and an owner be refused early).
            after_rollback(within, lambda: self.release(buckets))
        return full

    def release(self, buckets: Sequence[Bucket], within: object = None) -> None:
        """Give one hit back in each bucket; `within`: once the caller's transaction
        commits (nothing given back if it rolls back, as in the database stores)."""
        if not buckets:
            return
        if isinstance(within, Session):
            after_commit(within, lambda: self.release(buckets))
            return
        try:
            self._release(keys=[self._key(b) for b in buckets], args=[])
        except redis.RedisError as exc:
            # The slot stays taken until its window ends: the caller waits a little longer.
            log.error("limit store unreachable on release: %s", type(exc).__name__)

    def prune(self, now: int) -> int:
        return 0  # Redis expires the keys itself

    def close(self) -> None:
        self.client.close()
