"""Rows of `relatch user import`: CSV or JSON Lines in, checked accounts or reasons out.

Columns (CSV header or JSON keys): `email`, `username`, `name`, `password_hash`, and
optionally `activated` (true/false, yes/no, 1/0; absent or empty: false). Each row is
checked with the rules of sign-up (identity.checked_email normalises the address as
createUser does; the username rule; names are one line of at most 256 characters) and
its hash must be one Relatch can verify (core/foreign_hashes.py). A row that fails is
reported with its line number and the reason, never with its content (it may hold a
hash, and text from the file may carry terminal escapes).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from relatch.core import foreign_hashes, identity, text
from relatch.core.errors import InvalidInput

REQUIRED = ("email", "username", "name", "password_hash")
OPTIONAL = ("activated",)
MAX_NAME = 256
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


class BadFile(ValueError):
    """The file as a whole cannot be imported (a missing column): nothing is imported."""


@dataclass(frozen=True)
class ImportRow:
    email: str
    email_key: str
    username: str
    username_key: str
    name: str
    password_hash: str
    activated: bool
    scheme: str


def checked(raw: Mapping[str, object]) -> ImportRow:
    """The row as it will be stored, or InvalidInput naming the first problem."""
    values: dict[str, str] = {}
    for column in REQUIRED:
        value = raw.get(column)
        if not isinstance(value, str):
            raise InvalidInput(f"{column} is missing or not text")
        values[column] = value
    email = identity.checked_email(values["email"])
    username = identity.checked_username(values["username"].strip())
    name = values["name"].strip()
    if len(name) > MAX_NAME or not text.is_line(name):
        raise InvalidInput(f"name must be one line of at most {MAX_NAME} characters")
    stored = foreign_hashes.canonical(values["password_hash"].strip())
    if not stored:
        raise InvalidInput("password_hash is empty")
    if not text.is_line(stored):
        raise InvalidInput("password_hash holds control characters")
    try:
        scheme = foreign_hashes.scheme(stored)
    except foreign_hashes.UnknownHash as exc:
        raise InvalidInput(f"password_hash: {exc}") from exc
    return ImportRow(
        email=email,
        email_key=identity.email_key(email),
        username=username,
        username_key=identity.username_key(username),
        name=name or username,  # as createUser stores an empty name
        password_hash=stored,
        activated=_flag(raw.get("activated")),
        scheme=scheme,
    )


def _flag(value: object) -> bool:
    """`activated`: an account is activated only if its row says so (account pre-hijacking:
    an unproven address must prove itself, services/activation.py)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidInput("activated must be true or false")


Parsed = tuple[int, ImportRow | str]


def parse(rows: Iterable[tuple[int, Mapping[str, object] | str]]) -> Iterator[Parsed]:
    """(line number, checked row) or (line number, reason) for each raw row."""
    for line, raw in rows:
        if isinstance(raw, str):
            yield line, raw
            continue
        try:
            yield line, checked(raw)
        except InvalidInput as exc:
            yield line, exc.message


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, Mapping[str, object] | str]]:
    """The rows of a CSV file with a header line; BadFile if a required column is absent."""
    reader = csv.DictReader(iter(lines))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BadFile(f"the header lacks the column(s): {', '.join(missing)}")
    try:
        for row in reader:
            if None in row:  # more fields than the header names
                yield reader.line_num, "more fields than the header has columns"
            else:
                yield reader.line_num, row
    except csv.Error as exc:
        raise BadFile(f"line {reader.line_num}: not valid CSV ({exc})") from exc


def jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, Mapping[str, object] | str]]:
    """The rows of a JSON Lines file (one object a line; blank lines skipped)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield number, "not valid JSON"
            continue
        if not isinstance(value, dict):
            yield number, "not a JSON object"
            continue
        yield number, value
