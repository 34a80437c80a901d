"""core/keyed.py: every keyed digest of the service, one rotation rule, the old bytes kept."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from relatch.core import devices, keyed, limits

K = b"k" * 32
A = b"a" * 32  # the key a digest was made with
B = b"b" * 32  # the key that replaced it
SRC = Path(__file__).resolve().parents[3] / "src" / "relatch"

_QUERY = hashlib.sha256(b"client_id=x&state=y").hexdigest()
# Computed with the code before core/keyed.py existed (core/codes.py, core/apikeys.py,
# oauth/digests.py, oauth/signin.py, web/csrf.py, core/devices.py, oauth/reauth.py,
# services/known_clients.py, core/limits.py, services/audit.py) under K. Databases hold
# such digests (reset codes, API keys, OAuth tokens, known clients, audit rows) and browsers
# such cookies: a change of a single byte of any purpose's encoding fails here.
OLD_VECTORS: list[tuple[keyed.Purpose, tuple[keyed.Part, ...], str]] = [
    (
        keyed.RESET_CODE,
        (7, "ABCD2345"),
        "a97ddbe6525b0bf7bc581bb28f49a9d69a9aecf2b65e0c02e7188c8e0e2f71a4",
    ),
    (
        keyed.RECOVERY_CODE,
        (7, "ABCD2345"),
        "3922f446207c0e2414217a87cd37c08fe93b569b477390ac3bb9a07123aa699d",
    ),
    (
        keyed.NOT_ME_LINK,
        (7, "secretXYZ"),
        "b21918e38157c4243f783ea4375232d1e447048a0a153c024ccdecb2b85c1512",
    ),
    (
        keyed.AUDIT_TARGET,
        ("ann@example.org",),
        "f60f970881f991d23a5ba5b68ec72dfb5fb8e812602d02f67c18757c3ce4f1a0",
    ),
    (
        keyed.API_KEY,
        ("ei_abcd2345_secret",),
        "ef5503e80863de8748ca158bf9836a08bf869620964d1399c45c1933fc36a75a",
    ),
    (
        keyed.OAUTH_CLIENT_SECRET,
        ("value-1",),
        "b8a79973b8923856ecce096d8b88f8ed6623766df10cff50b07ad19cf21b5587",
    ),
    (
        keyed.OAUTH_CODE,
        ("value-1",),
        "253d7d067969f8c151f68820fc22634428d91f4be837677a606131b5b9bef429",
    ),
    (
        keyed.OAUTH_ACCESS,
        ("value-1",),
        "f33b7484c55db77a8379e43106cfb5aa237f87c15ee46197902a183d529d4ff4",
    ),
    (
        keyed.OAUTH_REFRESH,
        ("value-1",),
        "e9365587b3bcfbe10b5d9b9b2b5dc4ab496c4749602a3fbdf7b139182cd6be24",
    ),
    (keyed.OAUTH_SIGNIN, ("1.2.3.4",), "pbvlP7feQtQBz0d0KjFjCnMfQGQyVMINkFolWDFsST4"),
    (
        keyed.OAUTH_REAUTH,
        (5, 1700000000, _QUERY),
        "d5c44e1184ad0e736f346df95bb1b259b49078641d04873655784d3bde6dcad4",
    ),
    (
        keyed.CSRF,
        ("nonce-1",),
        "9bbf7f111bb644a3f999a25dfa978bc03b9df5d914d065ffd4296775aae3c68f",
    ),
    (keyed.DEVICE_COOKIE, ("A" * 22,), "txtO6SFKNmy5JluWMr-qWagGymUBHWKowNo3TybelK4"),
    (
        keyed.KNOWN_CLIENT,
        ("device", "ann@example.org", "dev-1"),
        "81797d130a2488bc1208379aec707aaf4192141ff8f5d3f84319a5645f049984",
    ),
    (
        keyed.RATE_LIMIT,
        ("reset_per_ip", "192.0.2.1"),
        "28c2c2a63282a091b30f8b6d3713a58aa3b2ad31",  # the first 40 characters are stored
    ),
    (
        keyed.RESET_LINK,
        (7, "linkSecret_-XYZ"),
        "fdff51abb2dae1c13966207e003431dd5dc1ffc8c49c8c786517e523ba6da07e",
    ),
    # Added with the purpose (issue 11): pins the encoding of stored activation codes.
    (
        keyed.ACTIVATION_CODE,
        (7, "ABCD2345"),
        "42d1d489a93f7aaa5636b5404a734a17fcaa1b638f648726e66a16ddc8082767",
    ),
    # Added with the purposes (issue 14): address-change codes and undo links.
    (
        keyed.EMAIL_CHANGE_CODE,
        (7, "ABCD2345"),
        "ca8064f6e1bcb48d7028186c861292efa34e7fcddebcccc9aadc17c4ccdd2995",
    ),
    (
        keyed.EMAIL_UNDO_LINK,
        (7, "secretXYZ"),
        "3b6760ab5d7035f852ce030da8584de550bbd35bd02d62e42f8a51f3144c4b86",
    ),
]
# The Fernet key material of the reset-code cookie (web/code_carry.py) under K.
OLD_CODE_CARRY_KEY = "9ae8c607dc6c73f36750716d95afe8e5dceabbdbbffce6a02fc4bac9c3c1f23d"
DIGESTS = [p for p in keyed.PURPOSES if p is not keyed.CODE_CARRY]


def _parts(purpose: keyed.Purpose) -> tuple[keyed.Part, ...]:
    return next(parts for p, parts, _ in OLD_VECTORS if p is purpose)


def test_every_digest_purpose_has_an_old_vector() -> None:
    assert {p.name for p, _, _ in OLD_VECTORS} == {p.name for p in DIGESTS}


@pytest.mark.parametrize(("purpose", "parts", "old"), OLD_VECTORS, ids=lambda v: str(v)[:24])
def test_digests_stored_before_keep_matching(
    purpose: keyed.Purpose, parts: tuple[keyed.Part, ...], old: str
) -> None:
    assert keyed.digest(K, purpose, *parts).startswith(old)
    assert keyed.digest(keyed.KeyRing(K), purpose, *parts).startswith(old)
    if purpose is not keyed.RATE_LIMIT:  # counter keys are looked up, never matched
        assert keyed.matches(keyed.KeyRing(B, [K]), purpose, *parts, stored=old)


def test_callers_still_pass_the_same_parts() -> None:
    from relatch.services import audit
    from relatch.services.known_clients import _digest, _Identity

    assert audit.target_digest(K, " Ann@Example.org") == OLD_VECTORS[3][2]
    assert devices.cookie_value(K, "A" * 22) == "A" * 22 + "." + OLD_VECTORS[12][2]
    assert limits.key_digest(K, "reset_per_ip", "192.0.2.1") == OLD_VECTORS[14][2]
    known = _digest(K, "ann@example.org", _Identity("device", "dev-1"))
    assert known == OLD_VECTORS[13][2]
    assert keyed.derive_key(K, keyed.CODE_CARRY).hex() == OLD_CODE_CARRY_KEY


@pytest.mark.parametrize("purpose", keyed.PURPOSES, ids=lambda p: p.name)
def test_key_rotation(purpose: keyed.Purpose) -> None:
    """The one rotation rule, for every purpose: made with A, it still counts while A is a
    fallback key behind B, and no longer once A is gone; nothing else matches."""
    if purpose is keyed.CODE_CARRY:  # a Fernet key, not a digest: the same rule
        token = Fernet(_fernet_key(A)).encrypt(b"ABCD2345")
        assert MultiFernet([Fernet(_fernet_key(B)), Fernet(_fernet_key(A))]).decrypt(token)
        with pytest.raises(InvalidToken):
            MultiFernet([Fernet(_fernet_key(B))]).decrypt(token)
        return
    parts = _parts(purpose)
    stored = keyed.digest(keyed.KeyRing(A), purpose, *parts)
    assert keyed.matches(keyed.KeyRing(A), purpose, *parts, stored=stored)
    assert keyed.matches(keyed.KeyRing(B, [A]), purpose, *parts, stored=stored)
    assert stored in keyed.candidates(keyed.KeyRing(B, [A]), purpose, *parts)
    assert not keyed.matches(keyed.KeyRing(B), purpose, *parts, stored=stored)
    assert stored not in keyed.candidates(keyed.KeyRing(B), purpose, *parts)
    # New digests are made with the current key.
    assert keyed.digest(keyed.KeyRing(B, [A]), purpose, *parts) != stored
    # Another value, or the same value for another purpose, does not match.
    other = (*parts[:-1], f"{parts[-1]}x")
    assert not keyed.matches(keyed.KeyRing(B, [A]), purpose, *other, stored=stored)
    for elsewhere in DIGESTS:
        if elsewhere is not purpose and elsewhere.parts == purpose.parts:
            with contextlib.suppress(ValueError):  # parts that cannot be its parts
                assert not keyed.matches(keyed.KeyRing(A), elsewhere, *parts, stored=stored)
    assert str(parts[-1]) not in stored


def _fernet_key(secret: bytes) -> bytes:
    return base64.urlsafe_b64encode(keyed.derive_key(secret, keyed.CODE_CARRY))


def test_parts_cannot_be_spliced() -> None:
    # (1, "2:X") and (12, "X")... only the last part may hold the separator.
    with pytest.raises(ValueError, match="separator"):
        keyed.digest(K, keyed.KNOWN_CLIENT, "device", "a\x00b", "c")
    with pytest.raises(ValueError, match="parts"):
        keyed.digest(K, keyed.RESET_CODE, "ABCD2345")
    last = keyed.digest(K, keyed.RESET_CODE, 1, "2:X")  # fine: the last part
    assert last != keyed.digest(K, keyed.RESET_CODE, 12, "X")


def test_what_a_client_sends_never_raises() -> None:
    # Non-ASCII and lone surrogates in a cookie or form field: no match, no 500.
    assert not keyed.matches(keyed.KeyRing(K), keyed.CSRF, "nonce", stored="é\udcff")
    assert not keyed.matches(keyed.KeyRing(K), keyed.OAUTH_CODE, "\ud800", stored="00")


def test_purposes_are_distinct_and_all_listed() -> None:
    names = [p.name for p in keyed.PURPOSES] + list(keyed.SEALS)
    assert len(names) == len(set(names))
    listed = {getattr(keyed, n) for n in dir(keyed) if isinstance(getattr(keyed, n), keyed.Purpose)}
    assert listed == set(keyed.PURPOSES)


def test_keys_never_show_in_a_repr() -> None:
    ring = keyed.KeyRing(b"current-secret", [b"old-secret"])
    assert "secret" not in repr(ring) and list(ring) == [b"current-secret", b"old-secret"]
    assert ring.current == b"current-secret"


def test_no_keyed_digest_outside_keyed_py() -> None:
    """The six (then eleven) copies do not come back: only core/keyed.py computes an HMAC,
    and every purpose it lists is used somewhere."""
    # sealing.py derives AES keys by HKDF ("relatch:seal:" + a SEAL_* name), not an HMAC.
    others = [p for p in SRC.rglob("*.py") if p.name not in ("keyed.py", "sealing.py")]
    text = {p: p.read_text() for p in others}
    assert [str(p) for p, t in text.items() if re.search(r"\bhmac\.new\b", t)] == []
    assert [str(p) for p, t in text.items() if 'b"relatch:' in t] == []
    everything = "\n".join(text.values())
    for name in [n for n in dir(keyed) if n.isupper() and n not in ("PURPOSES", "SEALS")]:
        assert f"keyed.{name}" in everything, name
