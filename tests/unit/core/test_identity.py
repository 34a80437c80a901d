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


@pytest.mark.parametrize("bad", ["abcde\n", "abcd\r", "ab\x00cd"])
def test_usernames_with_a_final_newline_or_controls_refused(bad: str) -> None:
    """`$` also matches before a final newline: "abcde\\n" passed the rule and was stored."""
    with pytest.raises(InvalidInput):
        identity.checked_username(bad)


@pytest.mark.parametrize("bad", ["a\x00@example.com", "a\ud800@example.com", "a\x1b@example.com"])
def test_addresses_with_controls_or_surrogates_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        identity.checked_email(bad)


@pytest.mark.parametrize("login", ["user\x000001", "user\ud800", "a\x00@example.com", "x\r\ny"])
def test_keys_of_unstorable_text_match_no_account(login: str) -> None:
    """Look-ups by such text find nobody instead of sending it to the database (PostgreSQL
    refuses NUL: a 500 from the OAuth sign-in form), and the key can be hashed."""
    assert identity.email_key(login) == identity.NO_ACCOUNT_KEY
    assert identity.username_key(login) == identity.NO_ACCOUNT_KEY
    identity.email_key(login).encode()
