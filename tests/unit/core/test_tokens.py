from __future__ import annotations

import jwt

from relatch.core import tokens

KEY = b"s" * 32
ISS = "http://relatch.test/v1"
NOW = 1_800_000_000


def test_round_trip_carries_subject_and_generation() -> None:
    token = tokens.issue(KEY, ISS, 42, 3, NOW, 3600)
    claims = tokens.decode(token, [KEY], ISS, NOW + 10)
    assert claims is not None
    assert (claims.account_id, claims.generation, claims.issued_at) == (42, 3, NOW)


def test_expired_at_exp() -> None:
    token = tokens.issue(KEY, ISS, 1, 0, NOW, 60)
    assert tokens.decode(token, [KEY], ISS, NOW + 59) is not None
    assert tokens.decode(token, [KEY], ISS, NOW + 60) is None


def test_wrong_key_issuer_and_algorithm_refused() -> None:
    token = tokens.issue(KEY, ISS, 1, 0, NOW, 60)
    assert tokens.decode(token, [b"t" * 32], ISS, NOW) is None
    assert tokens.decode(token, [KEY], "http://evil/v1", NOW) is None
    unsigned = jwt.encode(
        {"sub": "1", "gen": 0, "iat": NOW, "exp": NOW + 60, "iss": ISS, "aud": tokens.AUDIENCE},
        None,
        algorithm="none",
    )
    assert tokens.decode(unsigned, [KEY], ISS, NOW) is None


def test_fallback_key_accepted() -> None:
    old = b"o" * 32
    token = tokens.issue(old, ISS, 5, 1, NOW, 60)
    claims = tokens.decode(token, [KEY, old], ISS, NOW)
    assert claims is not None and claims.account_id == 5


def test_signed_in_within_is_inclusive_at_the_window() -> None:
    claims = tokens.decode(tokens.issue(KEY, ISS, 1, 0, NOW, 3600), [KEY], ISS, NOW)
    assert claims is not None
    assert tokens.signed_in_within(claims, NOW, 900)
    assert tokens.signed_in_within(claims, NOW + 900, 900)
    assert not tokens.signed_in_within(claims, NOW + 901, 900)
    # Clock skew: a token from a little in the future (decode allows a minute) is recent.
    assert tokens.signed_in_within(claims, NOW - 30, 900)


def test_renewed_token_keeps_the_sign_in_time_and_expiry() -> None:
    # Issue 8: a token renewed later (password change) is no newer sign-in, and the
    # session it renews ends when it would have.
    token = tokens.issue(KEY, ISS, 1, 2, NOW + 5000, 7200, auth_time=NOW)
    claims = tokens.decode(token, [KEY], ISS, NOW + 5000)
    assert claims is not None
    assert (claims.issued_at, claims.auth_time) == (NOW + 5000, NOW)
    assert not tokens.signed_in_within(claims, NOW + 5000, 900)
    assert tokens.decode(token, [KEY], ISS, NOW + 7199) is not None
    assert tokens.decode(token, [KEY], ISS, NOW + 7200) is None
    # A sign-in time in the future of the renewal cannot make it fresher.
    later = tokens.issue(KEY, ISS, 1, 2, NOW, 3600, auth_time=NOW + 999)
    assert (c := tokens.decode(later, [KEY], ISS, NOW)) is not None and c.auth_time == NOW


def test_token_without_auth_time_signed_in_when_issued() -> None:
    legacy = jwt.encode(
        {"sub": "1", "gen": 0, "iat": NOW, "exp": NOW + 60, "iss": ISS, "aud": tokens.AUDIENCE},
        KEY,
        algorithm=tokens.ALGORITHM,
    )
    claims = tokens.decode(legacy, [KEY], ISS, NOW)
    assert claims is not None and claims.auth_time == NOW
    # A forged-looking auth_time later than iat is clamped to iat (never fresher).
    odd = jwt.encode(
        {"sub": "1", "gen": 0, "iat": NOW, "auth_time": NOW + 500, "exp": NOW + 600,
         "iss": ISS, "aud": tokens.AUDIENCE},
        KEY,
        algorithm=tokens.ALGORITHM,
    )  # fmt: skip
    assert (c := tokens.decode(odd, [KEY], ISS, NOW)) is not None and c.auth_time == NOW
