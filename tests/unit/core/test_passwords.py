from __future__ import annotations

import pytest

from relatch.core import passwords
from relatch.core.errors import PasswordRejected

CTX = passwords.PasswordContext(username="someone", email="someone@example.com")


def test_nfkc_normalisation() -> None:
    # Full-width letters and the "ﬁ" ligature normalise to their plain forms.
    assert passwords.normalise("ｐａｓｓ") == "pass"
    assert passwords.normalise("ﬁne") == "fine"


def test_length_bounds_in_code_points() -> None:
    with pytest.raises(PasswordRejected, match="at least 8"):
        passwords.check("short", CTX, passwords.BASE_RULES)
    assert passwords.check("é" * 8, CTX, passwords.BASE_RULES) == "é" * 8
    passwords.check("x" * 1024, CTX, passwords.BASE_RULES)
    with pytest.raises(PasswordRejected, match="at most 1024"):
        passwords.check("x" * 1025, CTX, passwords.BASE_RULES)


def test_length_counted_after_normalisation() -> None:
    # Seven full-width characters are still seven: too short.
    with pytest.raises(PasswordRejected):
        passwords.check("ａ" * 7, CTX, passwords.BASE_RULES)


def test_nfkc_leaves_a_lone_surrogate_which_cannot_be_hashed() -> None:
    """Why `check` guards: NFKC keeps "\\ud800" as it is and UTF-8 (argon2) refuses it."""
    assert passwords.normalise("pass\ud800word") == "pass\ud800word"
    with pytest.raises(UnicodeEncodeError):
        passwords.normalise("pass\ud800word").encode()


@pytest.mark.parametrize("bad", ["pass\ud800word", "pass\udfffword", "pass\x00word"])
def test_nul_and_lone_surrogates_refused_whatever_the_rules(bad: str) -> None:
    with pytest.raises(PasswordRejected, match="NUL or an unpaired surrogate"):
        passwords.check(bad, CTX, ())
    with pytest.raises(PasswordRejected) as refused:
        passwords.check(bad, CTX, passwords.DEFAULT_RULES)
    assert bad not in refused.value.message


@pytest.mark.parametrize("good", ["pass\tword!", "\u00fcber sicher \U0001f511", "a\x1b[31mbcdefg"])
def test_any_other_character_is_fine(good: str) -> None:
    assert passwords.check(good, CTX, passwords.BASE_RULES) == passwords.normalise(good)
