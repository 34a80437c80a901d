"""Seeing it run: GET /healthz, GET /readyz and GET /metrics, outside /v1 and outside the
served OpenAPI document (which stays exactly Edge Impulse's).

- /healthz: the process answers (liveness); touches nothing else.
- /readyz: this process can serve: the database answers, its schema is at the latest
  migration, and both workers of this process have shown progress within their period
  (relatch/workers.py `Workers.health`). 200 `{"status": "ready", "checks": {...}}`, or
  503 `{"status": "unready", "checks": {...}, "failed": [...]}` naming each failed check.
  Answered within READY_TIMEOUT_SECONDS whatever the database does: a hung database is
  itself the answer ("database": "no answer within ...").
- /metrics: Prometheus text (infra/metrics.py), only when RELATCH_METRICS is on.
  Not protected by a credential (Prometheus scrapes without one): it tells request rates
  and queue sizes, never an address, code or key (its labels come from fixed sets), but
  those rates are still reconnaissance for an attacker timing a flood. Operators keep it
  off the public internet: the reverse proxy does not forward /metrics (README
  "Operating Relatch"), or RELATCH_METRICS=off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.core import GaugeMetricFamily

from relatch.auth.request import services
from relatch.infra import metrics
from relatch.services import readiness
from relatch.services.context import Services
from relatch.storage import outage, outbox_stats

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 3.0

router = APIRouter(include_in_schema=False)


class WorkerHealth(Protocol):
    """This process's workers (relatch/workers.py Workers), as readiness sees them."""

    def health(self) -> dict[str, str]: ...


NOT_RUNNING = {
    "reset_worker": "not running in this process",
    "mail_worker": "not running in this process",
}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {
        "database": f"no answer within {READY_TIMEOUT_SECONDS:g} s",
        "schema": "unknown",
    }
    with anyio.move_on_after(READY_TIMEOUT_SECONDS):
        # Abandoned, not awaited, past the deadline: the thread ends on the engine's own
        # connect and pool timeouts (storage/db.py).
        checks = await anyio.to_thread.run_sync(
            readiness.database_checks, services(request), abandon_on_cancel=True
        )
    workers: WorkerHealth | None = getattr(request.app.state, "workers", None)
    checks.update(workers.health() if workers is not None else NOT_RUNNING)
    failed = [name for name, state in checks.items() if state != readiness.OK]
    if failed:
        body: dict[str, Any] = {"status": "unready", "checks": checks, "failed": failed}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


async def _metrics(request: Request) -> Response:
    svc = services(request)
    queue = await anyio.to_thread.run_sync(_queue_metrics, svc)
    body = await anyio.to_thread.run_sync(metrics.scrape, [metrics.ScrapeCollector(lambda: queue)])
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _queue_metrics(svc: Services) -> Iterable[Any]:
    """The outbox's backlog, read from the database at scrape (every process sees it).
    Left out while the database is unreachable: the other metrics (the 503s counted
    meanwhile among them) are served all the same."""
    try:
        backlog = outbox_stats.backlog(svc.sessions)
    except Exception as exc:
        log.debug("metrics: mail queue not read: %s", outage.describe(exc))
        return []
    age = (svc.clock() - backlog.oldest).total_seconds() if backlog.oldest else 0.0
    return [
        GaugeMetricFamily(
            "relatch_mail_queue_depth",
            "Mails waiting to be sent (pending or being sent), all processes",
            value=backlog.depth,
        ),
        GaugeMetricFamily(
            "relatch_mail_queue_oldest_age_seconds",
            "Age of the oldest mail waiting to be sent (0 when none waits)",
            value=max(0.0, age),
        ),
    ]


def install(app: FastAPI, *, serve_metrics: bool) -> None:
    app.include_router(router)
    if serve_metrics:
        app.add_api_route(
            "/metrics", _metrics, methods=["GET"], name="metrics", include_in_schema=False
        )
