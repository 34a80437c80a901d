"""`relatch audit [--account EMAIL] [--since ISO-TIME]`: the audit trail, newest first."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from sqlalchemy import ColumnElement, or_, select

from relatch.cli.context import build
from relatch.cli.output import cell
from relatch.core import identity
from relatch.services import audit
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


def audit_command(
    account: str = typer.Option(None, "--account", help="address of the account (or any)"),
    since: str = typer.Option(None, "--since", help="only events at or after this ISO time"),
    limit: int = typer.Option(0, "--limit", min=0, help="at most this many rows (0: all)"),
) -> None:
    """The audit trail, newest first, tab separated (one row per event)."""
    svc = build(get_settings())
    try:
        query = select(AuditEvent, User.email).outerjoin(User, User.id == AuditEvent.account_id)
        if account:
            # The account's rows, and the rows of the address when no account matched
            # (stored only as a keyed digest: computed here under every key).
            key = identity.email_key(account)
            with svc.sessions() as s:
                user_id = s.scalars(select(User.id).where(User.email_key == key)).first()
            wanted: ColumnElement[bool] = AuditEvent.target_digest.in_(
                audit.target_digests(svc, account)
            )
            if user_id is not None:
                wanted = or_(wanted, AuditEvent.account_id == user_id)
            query = query.where(wanted)
        start = _since(since)
        if start is not None:
            query = query.where(AuditEvent.at >= start)
        query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if limit:
            query = query.limit(limit)
        typer.echo("\t".join(COLUMNS))
        with svc.sessions() as s:
            for row, email in s.execute(query):
                who = email or (f"#{row.account_id}" if row.account_id is not None else "-")
                target = row.target_digest[:16] if row.target_digest else "-"
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
