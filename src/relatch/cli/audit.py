"""`relatch audit [--account EMAIL] [--since ISO-TIME]`: the audit trail, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import aliased

from relatch.cli.context import build
from relatch.cli.output import cell
from relatch.core import identity
from relatch.services import audit
from relatch.services.context import Services
from relatch.settings import get_settings
from relatch.storage.models import User
from relatch.storage.models_audit import AuditEvent

COLUMNS = ("time", "event", "outcome", "account", "target", "client_ip", "user_agent", "request")


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter("use an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _wanted(svc: Services, address: str) -> ColumnElement[bool]:
    """The rows of an address: its account's (as actor or as subject of a staff action),
    and those stored with the address's keyed digest (an unknown address; the deletion of
    an account, whose earlier rows are then found by the deleted account's id)."""
    key = identity.email_key(address)
    digests = audit.target_digests(svc, address)
    with svc.sessions() as s:
        ids = set(s.scalars(select(User.id).where(User.email_key == key)))
        deleted = select(func.coalesce(AuditEvent.subject_id, AuditEvent.account_id)).where(
            AuditEvent.event == audit.ACCOUNT_DELETE, AuditEvent.target_digest.in_(digests)
        )
        ids |= {i for i in s.scalars(deleted) if i is not None}
    wanted: ColumnElement[bool] = AuditEvent.target_digest.in_(digests)
    if ids:
        wanted = or_(wanted, AuditEvent.account_id.in_(ids), AuditEvent.subject_id.in_(ids))
    return wanted


def audit_command(
    account: str = typer.Option(None, "--account", help="address of the account (or any)"),
    since: str = typer.Option(None, "--since", help="only events at or after this ISO time"),
    limit: int = typer.Option(0, "--limit", min=0, help="at most this many rows (0: all)"),
) -> None:
    """The audit trail, newest first, tab separated (one row per event)."""
    svc = build(get_settings())
    try:
        subject = aliased(User)
        query = (
            select(AuditEvent, User.email, subject.email)
            .outerjoin(User, User.id == AuditEvent.account_id)
            .outerjoin(subject, subject.id == AuditEvent.subject_id)
        )
        if account:
            query = query.where(_wanted(svc, account))
        start = _since(since)
        if start is not None:
            query = query.where(AuditEvent.at >= start)
        query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if limit:
            query = query.limit(limit)
        typer.echo("\t".join(COLUMNS))
        with svc.sessions() as s:
            for row, email, subject_email in s.execute(query):
                who = email or (f"#{row.account_id}" if row.account_id is not None else "-")
                # What a staff member or an operator acted on, else the login's digest.
                target = row.target_digest[:16] if row.target_digest else "-"
                if row.subject_id is not None:
                    target = subject_email or f"#{row.subject_id}"
                cells = (
                    row.at.isoformat(timespec="seconds"),
                    row.event,
                    row.outcome,
                    who,
                    target,
                    row.client_ip or "-",
                    row.user_agent or "-",
                    row.request_id or "-",
                )
                typer.echo("\t".join(cell(c) for c in cells))
    finally:
        svc.close()
