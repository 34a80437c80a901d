"""`relatch mail list|show`: the dev outbox."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import typer

from relatch.cli.output import block, cell
from relatch.mail.transports import list_messages
from relatch.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="The dev outbox (RELATCH_MAIL_DIR)")


def _read(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    return msg


@app.command("list")
def list_() -> None:
    """Messages, newest first: ID, date, recipient, subject."""
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
