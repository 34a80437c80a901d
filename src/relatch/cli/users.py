"""`relatch user ...`"""

from __future__ import annotations

import functools
import sys

import anyio
import typer

from relatch.cli.context import build
from relatch.cli.output import one_line
from relatch.cli.user_import import import_command
from relatch.core.errors import RelatchError
from relatch.core.meta import CLI
from relatch.services import accounts
from relatch.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Accounts")
app.command("import")(import_command)


@app.command("create")
def create(
    email: str = typer.Option(..., help="e-mail address"),
    username: str = typer.Option(..., help="username (4 to 30 characters)"),
    name: str = typer.Option(..., help="display name", callback=one_line),
) -> None:
    """Create an activated account; the password is read from stdin (one line)."""
    password = sys.stdin.readline().rstrip("\r\n")
    svc = build(get_settings())
    try:
        new = accounts.NewAccount(email=email, username=username, name=name, password=password)
        # Activated: the operator vouches for the address (no activation mail).
        user_id = anyio.run(functools.partial(accounts.create_user, activated=True), svc, new, CLI)
    except RelatchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        svc.close()
    typer.echo(f"created user {user_id}")
