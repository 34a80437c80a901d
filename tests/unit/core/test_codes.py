from __future__ import annotations

import re

from relatch.core import codes, keyed

SECRET = b"k" * 32


def test_generate_uses_crockford_alphabet_and_length() -> None:
    seen = {codes.generate() for _ in range(500)}
    assert len(seen) == 500  # 40 bits: collisions in 500 draws would mean a broken source
    for code in seen:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{8}", code)


def test_display_is_two_groups_of_four() -> None:
    assert codes.display("ABCD2345") == "ABCD-2345"


def test_canonical_accepts_case_hyphen_spaces_and_aliases() -> None:
    assert codes.canonical("abcd-2345") == "ABCD2345"
    assert codes.canonical(" ab cd 23 45 ") == "ABCD2345"
    assert codes.canonical("0OIL-1111") == "00111111"


def test_canonical_refuses_wrong_length_and_letters() -> None:
    assert codes.canonical("ABCD-234") is None
    assert codes.canonical("ABCD-23456") is None
    assert codes.canonical("ABCU-2345") is None  # U is not in Crockford base32
    assert codes.canonical("") is None


def test_digest_is_bound_to_account_and_purpose() -> None:
    d = keyed.digest(SECRET, keyed.RESET_CODE, 1, "ABCD2345")
    assert d != keyed.digest(SECRET, keyed.RESET_CODE, 2, "ABCD2345")
    assert d != keyed.digest(SECRET, keyed.RECOVERY_CODE, 1, "ABCD2345")
    assert d != keyed.digest(b"x" * 32, keyed.RESET_CODE, 1, "ABCD2345")
    assert "ABCD2345" not in d


# Key rotation (fallback keys accepted, a removed key not, another code not) is one test
# for every purpose: tests/unit/core/test_keyed.py::test_key_rotation.


def test_link_token_has_256_bits_and_round_trips() -> None:
    secret = codes.link_secret()
    assert len(secret) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", secret)
    assert codes.link_secret() != secret
    assert codes.split_link_token(codes.link_token(17, secret)) == (17, secret)


def test_split_link_token_refuses_what_cannot_be_one() -> None:
    # "²".isdigit() is true and int() refuses it: ASCII digits only, never a 500.
    for bad in ("", "17", "17.", ".abc", "².abc", "1.a b", "1.a/b", "x.abc", "1." + "a" * 200):
        assert codes.split_link_token(bad) is None, bad
