"""core/text.py: which characters a line and a secret may hold; what the CLI may print."""

from __future__ import annotations

import pytest

from relatch.core import text

NOT_IN_ANY = ["\x00", "\ud800", "\udfff", "a\udc80b"]
NOT_IN_LINE = ["\r", "\n", "\t", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e"]
FINE = ["", "Ada Lovelace", "Jos\u00e9 \u00d1and\u00fa", "\u0645\u062d\u0645\u062f", "\U0001f600"]


@pytest.mark.parametrize("bad", NOT_IN_ANY + NOT_IN_LINE)
def test_lines_refuse_controls_breaks_bidi_and_surrogates(bad: str) -> None:
    assert not text.is_line(f"name{bad}tail")


@pytest.mark.parametrize("good", [*FINE, "a b", "\u200d", "\u00a0"])
def test_lines_take_any_visible_text(good: str) -> None:
    assert text.is_line(good)


@pytest.mark.parametrize("bad", NOT_IN_ANY)
def test_secrets_refuse_only_nul_and_surrogates(bad: str) -> None:
    assert not text.is_secret(f"pass{bad}word")


@pytest.mark.parametrize("good", [*FINE, *NOT_IN_LINE])
def test_secrets_take_every_other_character(good: str) -> None:
    assert text.is_secret(f"pass{good}word")


def test_printable_drops_terminal_controls_keeps_newline_and_tab() -> None:
    assert text.printable("a\x1b[31mb\x9b2Jc\r\x07\x08\x00\n\td\u202e") == "a[31mb2Jc\n\td"


def test_inline_puts_everything_on_one_line() -> None:
    evil = "Ada\r\nYour\x0bcode\u2028is\x85X\tY\x1c\x1b[0m"
    assert text.inline(evil) == "Ada Your code is X Y [0m"
    assert len(text.inline(evil).splitlines()) == 1
