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
