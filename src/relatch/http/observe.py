"""What a request came to, for the metrics and the log lines: its outcome and operation.

Outcomes (the contract's, plus `error`): `success`; `refused`, a handled failure (HTTP 200
with `success: false`, marked by http/errors.py, the one place that answers one);
`limited` (429); `unauthenticated` (401, and a page's 403 on a stale form); `bad_input`
(any other 4xx: a body that is not valid, an unknown path, a page's refused form);
`unavailable` (503: the database unreachable); `error` (any other 5xx: a bug).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from relatch.infra import logs, metrics

# The scope key http/errors.py sets on a handled failure answered with HTTP 200.
REFUSED_KEY = "relatch.refused"
# The operation of a request no route matched (an unknown path, a refused Host header):
# one label, whatever the path (a path is client input: unbounded, and may hold secrets).
UNMATCHED = "unmatched"


def outcome(status: int, scope: MutableMapping[str, Any]) -> str:
    if status == 429:
        return "limited"
    if status in (401, 403):
        return "unauthenticated"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    if status >= 400:
        return "bad_input"
    return "refused" if scope.get(REFUSED_KEY) else "success"


def mark_refused(scope: MutableMapping[str, Any]) -> None:
    scope[REFUSED_KEY] = True


def count(scope: MutableMapping[str, Any], status: int, seconds: float) -> None:
    operation = logs.operation_of(scope) or UNMATCHED
    metrics.REQUESTS.labels(operation, outcome(status, scope)).inc()
    metrics.LATENCY.labels(operation).observe(seconds)
