"""Pure core of issue 4: API key format and digests, TOTP verification, sealing."""

from __future__ import annotations

import pyotp

from relatch.core import apikeys, keyed, sealing, totp

KEY = b"k" * 32
OLD = b"o" * 32
T0 = 1_767_268_800  # 2026-01-01 12:00:00 UTC, a step boundary


def test_key_format_and_parse() -> None:
    key, prefix = apikeys.generate()
    assert key.startswith(prefix + "_") and prefix.startswith("ei_") and len(prefix) == 11
    parsed = apikeys.parse(key)
    assert parsed is not None and parsed.prefix == prefix
    assert apikeys.parse(" " + key + " ") == parsed
    bad_keys = ["", "ei_", "rl_", prefix, prefix + "_", "xx" + key[2:], "ei_ABCDEFGH_x"]
    for bad in [*bad_keys, "rl_ABCDEFGH_x", key + "x" * 200]:
        assert apikeys.parse(bad) is None, bad
    # Keys issued before the `ei_` mark (npm client compatibility) still parse.
    earlier = apikeys.parse("rl_" + key[3:])
    assert earlier is not None and earlier.prefix == "rl_" + prefix[3:]


def test_key_digest_is_keyed() -> None:
    # Rotation: tests/unit/core/test_keyed.py::test_key_rotation, for every purpose.
    key, _ = apikeys.generate()
    stored = keyed.digest(OLD, keyed.API_KEY, key)
    assert key not in stored and len(stored) == 64
    assert not keyed.matches([KEY], keyed.API_KEY, key, stored=stored)


def test_totp_window_and_replay() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32
    token = pyotp.TOTP(secret).at(T0)
    step = T0 // 30
    match = totp.verify(secret, token, T0, last_step=0)
    assert match is not None and match.step == step
    # One step of drift either way, not two.
    assert totp.verify(secret, token, T0 + 30, 0) is not None
    assert totp.verify(secret, token, T0 + 60, 0) is None
    assert totp.verify(secret, pyotp.TOTP(secret).at(T0 + 30), T0, 0) is not None
    # Replay: the same step, or an older one, once a step was used.
    assert totp.verify(secret, token, T0, last_step=step) is None
    assert totp.verify(secret, "12345", T0, 0) is None
    assert totp.verify(secret, "abcdef", T0, 0) is None
    assert totp.token_at(secret, T0) == token


def test_provisioning_url() -> None:
    secret = totp.new_secret()
    url = totp.provisioning_url(secret, "ann@example.com")
    assert url.startswith(f"otpauth://totp/Relatch:ann%40example.com?secret={secret}")
    assert "issuer=Relatch" in url


def test_sealing_roundtrip_binding_and_rotation() -> None:
    sealed = sealing.seal(OLD, "totp-secret", "totp:1", "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert sealing.open_sealed([KEY, OLD], "totp-secret", "totp:1", sealed) == "JBSWY3DPEHPK3PXP"
    assert sealing.open_sealed([KEY], "totp-secret", "totp:1", sealed) is None
    assert sealing.open_sealed([OLD], "totp-secret", "totp:2", sealed) is None  # other account
    assert sealing.open_sealed([OLD], "other", "totp:1", sealed) is None  # other purpose
    tampered = sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB")
    assert sealing.open_sealed([OLD], "totp-secret", "totp:1", tampered) is None
    assert sealing.open_sealed([OLD], "totp-secret", "totp:1", "v1:!!!") is None
    assert sealing.open_sealed([OLD], "totp-secret", "totp:1", "v0:abc") is None
