"""`relatch mail list|show`: the dev outbox; `--failed` and `requests`: the dead letters."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import typer
from sqlalchemy import select

from relatch.cli.context import build
from relatch.cli.output import block, cell, escaped
from relatch.mail.transports import list_messages
from relatch.settings import get_settings
from relatch.storage.models import OutboxMessage, ResetRequest

app = typer.Typer(no_args_is_help=True, help="The dev outbox (RELATCH_MAIL_DIR)")


def _read(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    return msg


def _abandoned() -> None:
    """Abandoned mails (dead letters), newest first."""
    svc = build(get_settings())
    try:
        with svc.sessions() as s:
            rows = s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status == "abandoned")
                .order_by(OutboxMessage.id.desc())
            )
            for row in rows:
                cells = (
                    str(row.id),
                    row.created_at.isoformat(timespec="seconds"),
                    escaped(row.recipient),
                    escaped(row.subject),
                    f"{row.attempts} tries",
                    escaped(row.last_error),
                )
                typer.echo("\t".join(cells))
    finally:
        svc.close()


@app.command("list")
def list_(
    failed: bool = typer.Option(
        False, "--failed", help="abandoned mails (dead letters) from the database instead"
    ),
) -> None:
    """Messages, newest first: ID, date, recipient, subject.

    With --failed: ID, queued at, recipient, subject, tries, last error.
    """
    if failed:
        _abandoned()
        return
    for path in list_messages(get_settings().mail_dir):
        msg = _read(path)
        fields = (path.stem, msg["Date"], msg["To"], msg["Subject"])
        typer.echo("\t".join(cell(f) for f in fields))


@app.command("show")
def show(
    message_id: str = typer.Argument(None, help="ID from `mail list`; newest if omitted"),
) -> None:
    """One message: headers and its text part."""
    paths = list_messages(get_settings().mail_dir)
    if message_id:
        paths = [p for p in paths if p.stem == message_id or p.stem.startswith(message_id)]
    if not paths:
        typer.echo("no such message", err=True)
        raise typer.Exit(1)
    msg = _read(paths[0])
    for header in ("Date", "From", "To", "Subject", "Message-ID"):
        typer.echo(f"{header}: {cell(msg[header])}")
    typer.echo("")
    body = msg.get_body(preferencelist=("plain",))
    typer.echo(block(body.get_content()) if body is not None else "")


@app.command("requests")
def requests(
    failed: bool = typer.Option(False, "--failed", help="only the dead letters"),
) -> None:
    """Reset requests not yet turned into a mail, oldest first: ID, requested at, address,
    state (waiting, retrying or failed), tries, last error. A failed one (a dead letter)
    raised on every try and is no longer retried; the log has the reason too."""
    svc = build(get_settings())
    try:
        query = select(ResetRequest).order_by(ResetRequest.id)
        if failed:
            query = query.where(ResetRequest.failed_at.is_not(None))
        with svc.sessions() as s:
            for row in s.scalars(query):
                state = (
                    "failed"
                    if row.failed_at is not None
                    else ("retrying" if row.attempts else "waiting")
                )
                cells = (
                    str(row.id),
                    row.requested_at.isoformat(timespec="seconds"),
                    escaped(row.email),
                    state,
                    f"{row.attempts} tries",
                    escaped(row.last_error),
                )
                typer.echo("\t".join(cells))
    finally:
        svc.close()
