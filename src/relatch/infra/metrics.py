"""The Prometheus metrics of Relatch (`GET /metrics`, http/health.py): defined here once,
counted where the event is decided (services, the mail worker, the hashing pool, the HTTP
middleware), named `relatch_*` and listed in the README ("Operating Relatch").

Several processes (`relatch serve --workers N`): prometheus-client's multiprocess mode.
`relatch serve` gives the server processes a private folder in PROMETHEUS_MULTIPROC_DIR
(cli/main.py) before they start; each process writes its samples there and whichever
process answers a scrape adds them all up (`registry`). Counters survive their process;
the gauges of the hashing pool count live processes only (`livesum`).

Only counts and durations, never a label from the request (no address, no path, no IP):
every label value comes from a fixed set in the code, so the series stay few and no
secret can reach a scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

# No `*_created` series beside each counter: twice the lines for a timestamp that a
# restart already tells.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Relatch's own metrics only (the contract: names `relatch_*`), not prometheus-client's
# default process and Python collectors, which the multiprocess mode could not sum anyway.
RELATCH = CollectorRegistry(auto_describe=True)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# --- HTTP ------------------------------------------------------------------------------
# outcome: success, refused (a handled failure: 200 with success=false), limited (429),
# unauthenticated (401, 403), bad_input (other 4xx), unavailable (503), error (other 5xx).
OUTCOMES = (
    "success",
    "refused",
    "limited",
    "unauthenticated",
    "bad_input",
    "unavailable",
    "error",
)
REQUESTS = Counter(
    "relatch_http_requests",
    "HTTP requests answered, by operation (operationId, or the page's route) and outcome",
    ["operation", "outcome"],
    registry=RELATCH,
)
LATENCY = Histogram(
    "relatch_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by operation",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=RELATCH,
)

# --- reset codes and mail --------------------------------------------------------------
# issued (a mail queued with it), used (a reset by code or link), killed (a wrong try used
# the last try of a counter), expired (never used, revoked nor killed: counted when the
# worker prunes its row, a day past its expiry; services/code_expiry.py).
RESET_CODES = Counter(
    "relatch_reset_codes", "Reset codes, by what happened to them", ["event"], registry=RELATCH
)
# Activation codes (the mailed proof of a new account's address): issued, used, killed
# (a wrong try used its last try).
ACTIVATION_CODES = Counter(
    "relatch_activation_codes",
    "Activation codes, by what happened to them",
    ["event"],
    registry=RELATCH,
)
# queued (committed to the outbox), sent (accepted by the relay or written to the dev
# outbox), retried (a failed try, to be tried again), abandoned (a dead letter).
MAILS = Counter(
    "relatch_mails", "Outbox mails, by what happened to them", ["event"], registry=RELATCH
)

# --- limits, hashing, sign-ins ---------------------------------------------------------
RATE_LIMIT_REFUSALS = Counter(
    "relatch_rate_limit_refusals",
    "Requests refused by a rate limit, by the limit's name (RELATCH_LIMIT_<NAME>), "
    "hashing_pool when the argon2 queue was full, group_commit when the queue of cheap "
    "writes was (storage/group_commit.py)",
    ["limit"],
    registry=RELATCH,
)
HASHING_BUSY = Gauge(
    "relatch_hashing_pool_busy",
    "argon2 hashes running now (at most RELATCH_HASH_WORKERS per process)",
    multiprocess_mode="livesum",
    registry=RELATCH,
)
HASHING_WAITING = Gauge(
    "relatch_hashing_pool_waiting",
    "argon2 hashes waiting for a pool thread (past RELATCH_HASH_QUEUE: 429)",
    multiprocess_mode="livesum",
    registry=RELATCH,
)
# password (a whole sign-in, second factor included: login, the sign-in page, the OAuth
# password grant), api_key, jwt_header, jwt_cookie, oauth_bearer (a request whose
# credential was accepted).
SIGN_INS = Counter(
    "relatch_sign_ins", "Credentials accepted, by scheme", ["scheme"], registry=RELATCH
)


def count_killed(
    last_try: Iterable[int], matched: int | None, codes: Counter = RESET_CODES
) -> None:
    """A wrong try that used the last try of a code kills it (the right code on its last
    try is used, not killed)."""
    killed = sum(1 for code_id in last_try if code_id != matched)
    if killed:
        codes.labels("killed").inc(killed)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape(extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of every process's metrics, plus `extra` collectors computed
    now by the scraping process (the mail queue, read from the database)."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _ThisProcess:
    """RELATCH, seen through the registry of one scrape (whose per-scrape collectors must
    never join the process-wide one)."""

    def collect(self) -> Iterable[Any]:
        return RELATCH.collect()


def process_exiting() -> None:
    """A server process stops: its live gauges leave the sums (multiprocess mode)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class ScrapeCollector:
    """A collector whose metrics are computed at scrape time by `fn`."""

    def __init__(self, fn: Callable[[], Iterable[Any]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Any]:
        return self._fn()
