from __future__ import annotations

import pytest

from relatch.core import identity
from relatch.core.errors import InvalidInput


def test_email_key_folds_case_and_width() -> None:
    assert identity.email_key(" Ann@Example.COM ") == "ann@example.com"
    assert identity.email_key("ａｎｎ@example.com") == "ann@example.com"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@", "@b.com", "a b@c.com", "x" * 400])
def test_malformed_addresses_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        identity.checked_email(bad)


@pytest.mark.parametrize("good", ["abcd", "jan.jongboom", "a-b_c", "x" * 30])
def test_usernames_edge_impulse_rule(good: str) -> None:
    assert identity.checked_username(good) == good


@pytest.mark.parametrize("bad", ["abc", "x" * 31, ".abcd", "abcd_", "ab..cd", "ab cd"])
def test_usernames_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        identity.checked_username(bad)
