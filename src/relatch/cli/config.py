"""`relatch config`: the effective configuration, secrets masked; and the one way every
command that must not start on a bad configuration loads it (`load_settings`).

Secrets (STYLE rule 12): a secret is never printed, not even in part: the key is shown
by its length, a URL's password as `***`. A bad value is named by its variable and
pydantic's reason, never echoed back (it may be the secret itself).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr, ValidationError

from relatch.cli.output import cell
from relatch.settings import Settings, get_settings

MASK = "***"
# Plain-text settings that may carry a password in their URL.
URLS = ("database_url", "redis_url")
# The exit status of a bad configuration (Typer's usage errors are 2 as well).
BAD_CONFIG = 2


def env_name(field: str) -> str:
    return f"RELATCH_{field.upper()}"


def load_settings() -> Settings:
    """The settings, or exit BAD_CONFIG with each bad variable and why (stderr)."""
    try:
        return get_settings()
    except ValidationError as exc:
        typer.echo("error: invalid configuration", err=True)
        for err in exc.errors(include_input=False, include_url=False):
            where = env_name(str(err["loc"][0])) if err["loc"] else "configuration"
            typer.echo(f"  {where}: {err['msg']}", err=True)
        raise typer.Exit(BAD_CONFIG) from None


def masked_url(url: str) -> str:
    """A URL with its password, if any, replaced by MASK."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def shown(settings: Settings, field: str) -> str:
    value = getattr(settings, field)
    if field == "secret_key":
        if value is None:
            return f"unset (generated into {settings.secret_key_file})"
        return f"{MASK} ({len(value.get_secret_value().encode())} bytes)"
    if field == "secret_key_fallbacks":
        return "unset" if value is None else f"{MASK} ({len(settings.fallback_secrets)} keys)"
    if isinstance(value, SecretStr):  # RELATCH_SMTP_URL: its password only
        return masked_url(value.get_secret_value())
    if value is None:
        return "unset"
    if field in URLS:
        return masked_url(str(value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def config_command() -> None:
    """Print the effective configuration (secrets masked); exit 2 on a bad value."""
    settings = load_settings()
    for field in sorted(Settings.model_fields):
        typer.echo(f"{env_name(field)}={cell(shown(settings, field))}")
    problem = settings.secret_key_problem()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(BAD_CONFIG)
