"""Whether this process's database can serve (GET /readyz): reachable, schema at head.

The workers' part of readiness is relatch/workers.py (`Workers.health`).
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from relatch.services.context import Services
from relatch.storage import migrate, outage

log = logging.getLogger(__name__)

OK = "ok"


def database_checks(svc: Services) -> dict[str, str]:
    """{"database": ..., "schema": ...}, each "ok" or what is wrong (no statement, no
    value: the failure is named by class and SQLSTATE, storage/outage.py)."""
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            at = migrate.current(conn)
    except Exception as exc:
        # Probed every few seconds by an orchestrator: a DEBUG line, not a flood.
        log.debug("readiness: database check failed: %s", outage.describe(exc))
        return {"database": f"unreachable ({outage.describe(exc)})", "schema": "unknown"}
    head = migrate.heads()
    if at == head:
        return {"database": OK, "schema": OK}
    if not at:
        return {"database": OK, "schema": "not migrated (run relatch migrate)"}
    return {
        "database": OK,
        "schema": f"at {', '.join(sorted(at))}, expected {', '.join(sorted(head))}",
    }
