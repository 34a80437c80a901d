"""The `relatch` command line (assembled with its builder in relatch/app.py: `cli`)."""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from relatch.cli import apikeys as apikey_cli
from relatch.cli import audit as audit_cli
from relatch.cli import backup as backup_cli
from relatch.cli import config as config_cli
from relatch.cli import mail, users
from relatch.cli import oauth as oauth_cli
from relatch.cli.config import BAD_CONFIG, load_settings
from relatch.cli.context import Builder, use
from relatch.infra import logs, metrics
from relatch.settings import get_settings
from relatch.storage import migrate as migrations
from relatch.storage.db import make_engine


def make_cli(builder: Builder) -> typer.Typer:
    """The command line; every command that needs services gets them from `builder`."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help="Relatch: account recovery",
    )
    use(builder)
    app.callback()(_private_files)
    app.command()(migrate)
    app.command()(serve)
    app.add_typer(users.app, name="user")
    app.add_typer(mail.app, name="mail")
    app.add_typer(oauth_cli.clients, name="oauth-client")
    app.add_typer(oauth_cli.signing_keys, name="oauth-key")
    app.command("audit")(audit_cli.audit_command)
    app.add_typer(apikey_cli.app, name="apikey")
    app.command("config")(config_cli.config_command)
    app.command("backup")(backup_cli.backup_command)
    return app


def _private_files() -> None:
    """Every command: files this process creates are 0600 and folders 0700.

    The database, the dev outbox (live reset codes) and the secret key must not be readable
    by other local users (issue 8); the places that create them also set the mode
    explicitly, for when Relatch runs under another server than `relatch serve`.
    """
    os.umask(0o077)


def _migrate() -> None:
    engine = make_engine(get_settings().database_url)
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def migrate() -> None:
    """Bring the database schema up to date."""
    _migrate()
    typer.echo("database is up to date")


def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="server processes"),
) -> None:
    """Serve the API and web pages (migrates the database first)."""
    import uvicorn

    from relatch.http.protocol import RelatchH11Protocol

    settings = load_settings()  # a bad value: named, exit 2, nothing started
    problem = settings.secret_key_problem()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(BAD_CONFIG)
    # One logging configuration for this process and every server process (infra/logs.py).
    log_config = logs.config(settings.log_format)
    logging.config.dictConfig(log_config)
    _ = settings.secret  # create the key file once, before worker processes race for it
    _migrate()
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is over; with the
    # default handler that kills the process (status -15) after a clean stop. Ignored here,
    # so a clean stop exits 0 and a supervisor can tell it from a crash.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    with _metrics_dir(workers):
        uvicorn.run(
            "relatch.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,
            access_log=settings.access_log,  # RELATCH_ACCESS_LOG (bench/PROFILE.md: its cost)
            proxy_headers=False,  # X-Forwarded-For is only believed from RELATCH_TRUSTED_PROXIES
            server_header=False,
            # Slow and oversized requests (issue 8): h11 with a header cap, a request deadline
            # and connection caps; what uvicorn offers and what it lacks: http/protocol.py.
            http=RelatchH11Protocol,
            h11_max_incomplete_event_size=settings.max_header_bytes,
            # No limit_concurrency: its plain 503 is replaced by the 429 of http/protocol.py.
            ws="none",  # no WebSocket route: an upgrade must not take the connection elsewhere
            # Graceful shutdown (issue 10): on SIGTERM the requests in flight get this long to
            # finish before their connections are closed; the workers then stop (app.py).
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        )


@contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several server processes: prometheus-client's multiprocess mode, in a folder of
    this `relatch serve`'s own (0700, from mkdtemp), emptied of any earlier run's files by
    being new, and removed when the server stops. The processes started after this read
    it from the environment (infra/metrics.py). One process keeps its metrics in memory.
    """
    if workers < 2:
        yield
        return
    folder = tempfile.mkdtemp(prefix="relatch-metrics-")
    before = os.environ.get(metrics.MULTIPROC_ENV)
    os.environ[metrics.MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(metrics.MULTIPROC_ENV, None)
        else:
            os.environ[metrics.MULTIPROC_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)
