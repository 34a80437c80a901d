"""How a command gets its services: through the builder relatch/app.py hands the CLI.

The CLI sits below the assembly (layer test): it never imports relatch/app.py. The
assembly calls `cli.main.make_cli(build)`, which registers the builder here once per
process; every command then asks `build`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from relatch.core.errors import RelatchError
from relatch.services.context import Services
from relatch.settings import Settings, get_settings

T = TypeVar("T")

Builder = Callable[[Settings], Services]

_builder: list[Builder] = []


def use(builder: Builder) -> None:
    _builder[:] = [builder]


def build(settings: Settings) -> Services:
    if not _builder:
        raise RuntimeError("the CLI runs through relatch.app.cli, which supplies its builder")
    return _builder[0](settings)


def run(action: Callable[[Services], T]) -> T:
    """One operator action on fresh services; a refusal printed, exit status 1."""
    svc = build(get_settings())
    try:
        return action(svc)
    except RelatchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        svc.close()
