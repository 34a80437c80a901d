"""GET /healthz and GET /readyz (issue 13): outside /v1 and the OpenAPI document; readiness
names each failed check: a stopped, late or absent worker, a database not migrated or
behind, a database that does not answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from relatch.app import build, create_app
from relatch.mail.transports import MailDirTransport
from relatch.services.context import Services
from relatch.storage import migrate
from relatch.workers import LATE_AFTER_SECONDS, Beat, Workers
from tests.conftest import test_settings as make_settings
from tests.e2e.servers import free_port

READY = {"database": "ok", "schema": "ok", "reset_worker": "ok", "mail_worker": "ok"}


def workers_of(client: TestClient, svc: Services) -> Workers:
    """This process's workers as the lifespan would hold them, run once by the test."""
    workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))
    client.app.state.workers = workers  # type: ignore[attr-defined]
    anyio.run(workers.run_once)
    return workers


def fresh(workers: Workers) -> None:
    """Both workers showed progress just now (for tests about the other checks)."""
    for name in workers.beats:
        workers.beats[name] = Beat(last=time.monotonic(), passes=1)


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


def test_ready_once_both_workers_have_run_a_pass(client: TestClient, svc: Services) -> None:
    workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))
    client.app.state.workers = workers  # type: ignore[attr-defined]
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.json()["checks"]["reset_worker"] == "no pass finished yet"

    anyio.run(workers.run_once)

    resp = client.get("/readyz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ready", "checks": READY})


def test_workers_not_started_are_named(client: TestClient) -> None:
    # The suite's app runs no workers (RELATCH_RUN_WORKERS off): nothing sends the mail.
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unready"
    assert body["failed"] == ["reset_worker", "mail_worker"]
    assert body["checks"]["database"] == "ok" and body["checks"]["schema"] == "ok"


def test_halted_workers_are_named(client: TestClient, svc: Services) -> None:
    workers = workers_of(client, svc)
    assert client.get("/readyz").status_code == 200

    workers.stop()

    body = client.get("/readyz").json()
    assert body["failed"] == ["reset_worker", "mail_worker"]
    assert body["checks"]["mail_worker"] == "stopped"


def test_a_worker_without_progress_for_its_period_is_named(
    client: TestClient, svc: Services
) -> None:
    workers = workers_of(client, svc)
    period = svc.settings.worker_poll_seconds + LATE_AFTER_SECONDS
    # The mail worker's last sign of life lies just past its period (a hung relay).
    workers.beats["mail"].last = time.monotonic() - period - 1

    resp = client.get("/readyz")

    assert resp.status_code == 503
    assert resp.json()["failed"] == ["mail_worker"]
    assert resp.json()["checks"]["mail_worker"].startswith("no progress for more than")


def test_the_real_workers_make_it_ready(tmp_path: Path, db_url: str, svc: Services) -> None:
    """The lifespan's own workers (RELATCH_RUN_WORKERS on), not a pass run by the test."""
    settings = make_settings(tmp_path, db_url, run_workers=True, worker_poll_seconds=0.05)
    app = create_app(svc=build(settings))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            deadline = time.monotonic() + 10
            while (resp := client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, resp.json()
                time.sleep(0.05)
            assert resp.json()["checks"] == READY
    finally:
        app.state.services.close()


@pytest.fixture
def empty_db_client(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, Services]]:
    """The app on a database nobody migrated (`db_url` without `svc`: empty)."""
    svc = build(make_settings(tmp_path, db_url))
    try:
        with TestClient(create_app(svc=svc), raise_server_exceptions=False) as client:
            yield client, svc
    finally:
        svc.close()


def test_a_database_not_migrated_is_named(
    empty_db_client: tuple[TestClient, Services],
) -> None:
    client, svc = empty_db_client
    workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))
    fresh(workers)
    client.app.state.workers = workers  # type: ignore[attr-defined]

    resp = client.get("/readyz")

    assert resp.status_code == 503
    body = resp.json()
    assert body["failed"] == ["schema"]
    assert body["checks"]["schema"] == "not migrated (run relatch migrate)"
    assert body["checks"]["database"] == "ok"

    # Part way (an older release's schema): named with where it is and where it should be.
    migrate.upgrade(svc.engine, "0001_core")
    body = client.get("/readyz").json()
    assert body["failed"] == ["schema"]
    assert body["checks"]["schema"].startswith("at 0001_core, expected ")

    migrate.upgrade(svc.engine)
    assert client.get("/readyz").json() == {"status": "ready", "checks": READY}


def test_an_unreachable_database_is_named_quickly(tmp_path: Path) -> None:
    """Not the API's generic 503 (http/errors.py): readiness answers its own, naming it."""
    url = f"postgresql://relatch@127.0.0.1:{free_port()}/relatch"
    svc = build(make_settings(tmp_path, url))
    try:
        with TestClient(create_app(svc=svc), raise_server_exceptions=False) as client:
            workers = Workers(svc, MailDirTransport(svc.settings.mail_dir))
            fresh(workers)
            client.app.state.workers = workers  # type: ignore[attr-defined]
            began = time.monotonic()
            resp = client.get("/readyz")
            took = time.monotonic() - began
    finally:
        svc.close()
    assert took < 5, f"readyz took {took:.1f}s"  # generous: the contract's outage bound
    assert resp.status_code == 503
    body = resp.json()
    assert body["failed"] == ["database", "schema"]
    assert body["checks"]["database"].startswith("unreachable (OperationalError")


def test_health_endpoints_stay_out_of_the_served_openapi(client: TestClient) -> None:
    paths = client.get("/v1/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
