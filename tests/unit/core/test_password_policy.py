"""The default policy's pure rules: context words and the common-password list."""

from __future__ import annotations

import gzip
from importlib import resources

import pytest

from relatch.core import passwords
from relatch.core.errors import PasswordRejected

CTX = passwords.PasswordContext(username="jane.doe", email="Jane.Smith+news@example.com")


def check(password: str, ctx: passwords.PasswordContext = CTX) -> str:
    return passwords.check(password, ctx, passwords.DEFAULT_RULES)


def test_shipped_list_holds_at_least_10000_passwords_of_policy_length() -> None:
    raw = resources.files("relatch.core").joinpath("data/common-passwords.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode().split()
    assert len(set(lines)) >= 10_000
    assert all(8 <= len(w) <= 1024 and w == w.lower() for w in lines)
    assert len(passwords.common_passwords()) == len(set(lines))


@pytest.mark.parametrize("pw", ["password1", "Password123", "QWERTYUIOP", " iloveyou ", "12345678"])
def test_common_passwords_refused_case_insensitively(pw: str) -> None:
    with pytest.raises(PasswordRejected, match="too common"):
        check(pw)


@pytest.mark.parametrize(
    "pw",
    ["xx jane.doe xx", "JANE.DOE!!", "JaneDoe2024", "jane_doe is me", "ｊａｎｅ．ｄｏｅ 2026"],
)
def test_username_refused(pw: str) -> None:
    with pytest.raises(PasswordRejected, match="contains your username"):
        check(pw)


@pytest.mark.parametrize("pw", ["my jane.smith pw", "JaneSmith1999", "jane.smith+news!"])
def test_address_local_part_refused(pw: str) -> None:
    with pytest.raises(PasswordRejected, match="part of your e-mail address before the @"):
        check(pw)


def test_short_identifiers_are_not_refused() -> None:
    # "bob" is 3 characters: refusing every password containing it would refuse too much.
    ctx = passwords.PasswordContext(username="bob", email="al@example.com")
    assert check("bob and al went out", ctx) == "bob and al went out"


@pytest.mark.parametrize(
    "pw",
    ["correct horse battery", "Jane's secret garden", "пароль очень длинный", "🙂🙃🙂🙃🙂🙃🙂🙃"],
)
def test_any_unicode_and_no_composition_rules(pw: str) -> None:
    assert check(pw) == passwords.normalise(pw)


def test_length_is_checked_first_with_its_message() -> None:
    with pytest.raises(PasswordRejected, match="at least 8 characters"):
        check("jane")
