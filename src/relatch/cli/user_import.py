"""`relatch user import FILE`: accounts with their password hashes, from CSV or JSON Lines."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from relatch.cli.context import build
from relatch.core import import_rows
from relatch.services.account_import import BATCH, ImportSummary, import_accounts
from relatch.settings import get_settings

SHOWN = 100  # skipped rows printed; --errors writes them all
BAD_FILE = 2


class Format(StrEnum):
    auto = "auto"
    csv = "csv"
    jsonl = "jsonl"


def _format_of(path: Path, chosen: Format) -> Format:
    if chosen is not Format.auto:
        return chosen
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return Format.jsonl
    if path.suffix.lower() == ".csv":
        return Format.csv
    with path.open(encoding="utf-8-sig") as f:
        start = f.read(1024).lstrip()
    return Format.jsonl if start.startswith("{") else Format.csv


def _lines(path: Path) -> Iterator[str]:
    # newline="": the csv module handles quoted line breaks itself; utf-8-sig drops a BOM.
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from f


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: Annotated[
        Format, typer.Option("--format", help="csv or jsonl (default: by the name)")
    ] = Format.auto,
    batch: Annotated[int, typer.Option(min=1, help="rows per transaction")] = BATCH,
    errors: Annotated[
        Path | None, typer.Option(help="write every skipped line and reason here")
    ] = None,
) -> None:
    """Import accounts with their existing password hashes (CSV or JSON Lines; columns
    email, username, name, password_hash, optional activated). Resumable: accounts
    already there are skipped. Exit 1 when some rows were skipped."""
    kind = _format_of(file, fmt)
    reader = import_rows.jsonl_rows if kind is Format.jsonl else import_rows.csv_rows
    err = Console(stderr=True)
    svc = build(get_settings())
    try:
        total = max(0, _count_lines(file) - (1 if kind is Format.csv else 0))
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("rows", total=total or None)
            parsed = import_rows.parse(reader(_lines(file)))
            summary = import_accounts(
                svc, parsed, batch=batch, progress=lambda n: bar.advance(task, n)
            )
    except import_rows.BadFile as exc:
        typer.echo(f"error: {exc} (whole batches before it stay; a re-run skips them)", err=True)
        raise typer.Exit(BAD_FILE) from exc
    except UnicodeDecodeError as exc:
        typer.echo("error: the file is not UTF-8 text (whole batches before it stay)", err=True)
        raise typer.Exit(BAD_FILE) from exc
    finally:
        svc.close()
    _report(summary, errors)
    if summary.skipped or summary.duplicates:
        raise typer.Exit(1)


def _report(summary: ImportSummary, errors: Path | None) -> None:
    typer.echo(f"imported: {summary.imported}")
    typer.echo(f"already there (skipped): {summary.already_there}")
    typer.echo(f"duplicates in the file (skipped): {len(summary.duplicates)}")
    typer.echo(f"invalid or refused (skipped): {len(summary.skipped)}")
    problems = sorted(summary.duplicates + summary.skipped)
    for line, reason in problems[:SHOWN]:
        typer.echo(f"  line {line}: {reason}")
    if len(problems) > SHOWN:
        more = len(problems) - SHOWN
        hint = f" (all in {errors})" if errors else " (--errors FILE lists them all)"
        typer.echo(f"  ... and {more} more{hint}")
    if errors is not None:
        errors.write_text("".join(f"line {n}: {why}\n" for n, why in problems))
