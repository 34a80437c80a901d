"""How a command gets its services: through the builder relatch/app.py hands the CLI.

The CLI sits below the assembly (layer test): it never imports relatch/app.py, so
`make_cli(build)` puts the builder in the root click context and every command asks it.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from relatch.services.context import Services
from relatch.settings import Settings

Builder = Callable[[Settings], Services]


def build(settings: Settings) -> Services:
    builder = click.get_current_context().find_root().obj
    if not callable(builder):
        raise RuntimeError("the CLI runs through relatch.app.cli, which supplies its builder")
    services: Services = builder(settings)
    return services
