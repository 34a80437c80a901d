"""How a command gets its services: through the builder relatch/app.py hands the CLI.

The CLI sits below the assembly (layer test): it never imports relatch/app.py. The
assembly calls `cli.main.make_cli(build)`, which registers the builder here once per
process; every command then asks `build`.
"""

from __future__ import annotations

from collections.abc import Callable

from relatch.services.context import Services
from relatch.settings import Settings

Builder = Callable[[Settings], Services]

_builder: list[Builder] = []


def use(builder: Builder) -> None:
    _builder[:] = [builder]


def build(settings: Settings) -> Services:
    if not _builder:
        raise RuntimeError("the CLI runs through relatch.app.cli, which supplies its builder")
    return _builder[0](settings)
