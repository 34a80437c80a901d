"""The audit trail as rows, oldest first."""

from __future__ import annotations

from sqlalchemy import select

from relatch.services.context import Services
from relatch.storage.models_audit import AuditEvent


def rows(svc: Services) -> list[AuditEvent]:
    with svc.sessions() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
