"""Stored text as the CLI prints it: never a terminal escape sequence.

Terminal injection: names, mail subjects and audit fields come from clients. ESC starts
escape sequences that recolour, retitle, hide or rewrite what the operator sees (and some
terminals answer queries with input of their own); CR rewrites the current line; U+009B
is a one-character CSI. Every printed value of stored text goes through `cell` (one field
of a tab-separated row) or `block` (multi-line text, such as a mail body).
"""

from __future__ import annotations

import typer

from relatch.core import text


def cell(value: object) -> str:
    """One field of a row: line breaks and tabs become spaces, other controls go."""
    return text.inline(str(value))


def block(value: object) -> str:
    """Multi-line text: newlines and tabs stay, every other control character goes."""
    return text.printable(str(value))


def escaped(value: str | None) -> str:
    """Stored text as one visible cell: controls shown as escapes (`\\n`, `\\x1b`), not
    dropped, for dead letters, whose hostile input is the very thing to look at."""
    if not value:
        return "-"
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value)


def one_line(value: str | None) -> str | None:
    """Option callback for text the CLI stores (names): the API's rule (core/text.py)."""
    if value is not None and not text.is_line(value):
        raise typer.BadParameter(f"use {text.LINE_RULE}")
    return value
