"""`relatch backup FILE`: a consistent copy of the SQLite database, safe while serving.

SQLite's online backup API (sqlite3.Connection.backup) copies the database page by page
inside one read transaction: in WAL mode readers never block the server's writers, and
the copy is the database as of one moment, never a file torn between two writes (which
`cp` of a live database, its -wal file apart, can give). PostgreSQL: pg_dump (README).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from relatch.cli.config import BAD_CONFIG, load_settings
from relatch.storage.db import normalise_url

PG_HINT = (
    "relatch backup copies SQLite databases; for PostgreSQL use pg_dump, e.g. "
    "pg_dump --format=custom --file=relatch.dump DBNAME (README: Backup and restore)"
)


def backup_command(
    file: Annotated[Path, typer.Argument(help="where to write the copy (must not exist)")],
) -> None:
    """Copy the SQLite database to FILE while the server may be running (online backup)."""
    url = make_url(normalise_url(load_settings().database_url))
    if url.get_backend_name() != "sqlite":
        typer.echo(f"error: {PG_HINT}", err=True)
        raise typer.Exit(BAD_CONFIG)
    source = url.database
    if not source or source == ":memory:" or not Path(source).is_file():
        typer.echo("error: no SQLite database file at RELATCH_DATABASE_URL", err=True)
        raise typer.Exit(1)
    try:
        # 0600 and never over an existing file: the copy holds password hashes and digests
        # (issue 8, private files), and an earlier backup is not silently replaced.
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError as exc:
        typer.echo(f"error: {file} exists; choose a new name", err=True)
        raise typer.Exit(1) from exc
    try:
        with (
            closing(sqlite3.connect(source, timeout=30)) as src,
            closing(sqlite3.connect(file)) as dst,
        ):
            src.backup(dst)  # all pages in one step: one consistent read transaction
            ok = dst.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        file.unlink(missing_ok=True)
        typer.echo(f"error: backup failed ({type(exc).__name__})", err=True)
        raise typer.Exit(1) from exc
    if ok is None or ok[0] != "ok":
        file.unlink(missing_ok=True)
        typer.echo("error: the copy failed its integrity check", err=True)
        raise typer.Exit(1)
    typer.echo(f"backed up to {file} ({file.stat().st_size} bytes)")
