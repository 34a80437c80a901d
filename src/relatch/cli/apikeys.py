"""`relatch apikey ...`: create (the key printed once, alone on the last line), list, revoke."""

from __future__ import annotations

from datetime import UTC

import typer

from relatch.cli.context import run
from relatch.cli.output import cell, one_line
from relatch.core.meta import CLI
from relatch.services import api_keys
from relatch.services.context import Services

app = typer.Typer(no_args_is_help=True, help="API keys")


@app.command("create")
def create(
    email: str = typer.Option(..., help="e-mail address of the account"),
    name: str | None = typer.Option(
        None, help="a label to recognise the key by", callback=one_line
    ),
) -> None:
    """Create an API key; it is printed once, alone on the last line, and never stored."""

    def act(svc: Services) -> api_keys.NewKey:
        user = api_keys.account_by_email(svc, email)
        return api_keys.create(svc, user.id, name, CLI)

    new = run(act)
    typer.echo(f"created API key {new.info.id} ({new.info.prefix}, {cell(new.info.name)!r})")
    typer.echo("the key is shown this once; store it now:")
    typer.echo(new.key)


@app.command("list")
def list_(email: str = typer.Option(..., help="e-mail address of the account")) -> None:
    """The account's live keys: id, prefix, name, creation and last use (never the keys)."""

    def act(svc: Services) -> list[api_keys.KeyInfo]:
        return api_keys.list_keys(svc, api_keys.account_by_email(svc, email).id)

    keys = run(act)
    if not keys:
        typer.echo("no API keys")
    for k in keys:
        used = k.last_used_at.astimezone(UTC).isoformat() if k.last_used_at else "never"
        created = k.created_at.astimezone(UTC).isoformat()
        typer.echo(f"{k.id}\t{k.prefix}\t{cell(k.name)}\tcreated {created}\tlast used {used}")


@app.command("revoke")
def revoke(key_id: int = typer.Argument(..., metavar="KEY-ID", help="id shown by `list`")) -> None:
    """Revoke a key: from now on it is refused."""
    info = run(lambda svc: api_keys.revoke(svc, key_id, CLI))
    typer.echo(f"revoked API key {info.id} ({info.prefix})")
