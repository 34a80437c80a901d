"""`relatch user ...`"""

from __future__ import annotations

import functools
import getpass
import os
import sys

import anyio
import typer

from relatch.cli.context import build, run
from relatch.cli.output import one_line
from relatch.cli.user_import import import_command
from relatch.core.errors import RelatchError
from relatch.core.meta import CLI
from relatch.services import accounts, mfa_reset, operator
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


@app.command("staff")
def staff(
    email: str = typer.Option(..., help="e-mail address of the account"),
    revoke: bool = typer.Option(False, "--revoke", help="stop the account being staff"),
) -> None:
    """Make an account staff (it may then act on other accounts by id, from a recent
    session with TOTP set), or stop it being staff."""
    user = run(lambda svc: operator.set_staff(svc, email, not revoke, CLI))
    typer.echo(f"user {user.id} is {'no longer ' if revoke else ''}staff")


@app.command("reset")
def reset(email: str = typer.Option(..., help="e-mail address of the account")) -> None:
    """Mail the account a reset code (an operator never sets a password)."""
    user = run(lambda svc: operator.send_reset(svc, email, CLI))
    typer.echo(f"reset code mailed to user {user.id}")


@app.command("suspend")
def suspend(
    email: str = typer.Option(..., help="e-mail address of the account"),
    reason: str = typer.Option(..., help="why (shown to staff in getUser)", callback=one_line),
) -> None:
    """Suspend an account: no sign-in, no credential works, no reset code."""
    user = run(lambda svc: operator.suspend(svc, email, reason, CLI))
    typer.echo(f"user {user.id} suspended")


@app.command("unsuspend")
def unsuspend(email: str = typer.Option(..., help="e-mail address of the account")) -> None:
    """Lift a suspension (sessions from before it stay signed out)."""
    user = run(lambda svc: operator.unsuspend(svc, email, CLI))
    typer.echo(f"user {user.id} no longer suspended")


def operator_name() -> str:
    """Who runs the command, for the audit trail: the OS user (and, under sudo, the user
    who ran sudo). Not proof against an operator who sets LOGNAME: whoever runs the CLI
    holds the database and the secret key anyway; it answers "who asked" for the honest
    record, not for an adversary."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without /etc/passwd)
        name = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo from {sudo})" if sudo and sudo != name else name


@app.command("mfa-reset")
def mfa_reset_command(
    email: str = typer.Option(..., help="e-mail address of the account"),
    reason: str | None = typer.Option(
        None, help="why (kept in the audit trail; not mailed)", callback=one_line
    ),
    cancel: bool = typer.Option(False, "--cancel", help="cancel the pending removal"),
) -> None:
    """Remove the account's TOTP second factor after RELATCH_MFA_RESET_WAIT_HOURS (72)
    hours. The owner is mailed at once; "this was not me" or signing in with the factor
    cancels it. After the wait, it goes at the next worker pass or the owner's sign-in."""
    who = operator_name()
    meta = mfa_reset.operator_meta(who, reason)
    if cancel:
        done = run(lambda svc: mfa_reset.cancel(svc, email, meta))
        typer.echo(f"removal of the second factor of user {done.user_id} cancelled")
        return
    asked = run(lambda svc: mfa_reset.request(svc, email, who, reason, meta))
    when = asked.due_at.strftime("%Y-%m-%d %H:%M UTC")
    typer.echo(
        f"second factor of user {asked.user_id} will be removed on {when}; the owner was mailed"
    )
