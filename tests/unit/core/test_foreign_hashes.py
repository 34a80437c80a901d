"""Imported hash formats: Django's own test vectors verify; parameters come from the hash;
what cannot be verified, or costs too much, is refused with a reason."""

from __future__ import annotations

import pytest

from relatch.core import foreign_hashes
from relatch.core.hashing import Argon2Params, Hasher
from tests.helpers.hash_formats import SCHEMES, make_hash

# Published vectors: Django's tests/auth_tests/test_hashers.py (scrypt, pbkdf2_sha1 of
# Django 1.4's 10,000 iterations) and a Django 1.10 pbkdf2_sha256 admin hash.
VECTORS = [
    (
        "lètmein",
        "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NY"
        "afTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==",
    ),
    ("letmein", "pbkdf2_sha1$10000$seasalt$91JiNKgwADC8j2j86Ije/cc4vfQ="),
    ("admin", "pbkdf2_sha256$24000$JMO9TJawIXB1$5iz40fwwc+QW6lZY+TuNciua3YVMV3GXdgkhXrcvWag="),
]
HASHER = Hasher(Argon2Params(memory_kib=1024, time_cost=1))


@pytest.mark.parametrize(("password", "stored"), VECTORS)
def test_django_vectors_verify(password: str, stored: str) -> None:
    assert HASHER.verify(stored, password) is True
    assert HASHER.verify(stored, password + "x") is False
    assert HASHER.needs_rehash(stored) is True


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_format_verifies_and_needs_a_rehash(scheme: str) -> None:
    stored = make_hash(scheme, "pässword one")
    assert foreign_hashes.scheme(stored) == scheme
    assert HASHER.verify(stored, "pässword one") is True
    assert HASHER.verify(stored, "password one") is False
    assert HASHER.needs_rehash(stored) is True


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_variants_and_72_bytes(prefix: str) -> None:
    long = "x" * 72
    stored = make_hash("bcrypt", long, prefix=prefix)
    assert HASHER.verify(stored, long + "ignored by bcrypt") is True  # as bcrypt always did


def test_own_hash_needs_no_rehash_until_the_parameters_change() -> None:
    own = HASHER.hash("pässword one")
    assert HASHER.needs_rehash(own) is False
    assert Hasher(Argon2Params(memory_kib=2048, time_cost=1)).needs_rehash(own) is True


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("sha1$salt$abc", "unknown hash format"),
        ("$2b$03$" + "a" * 53, "bcrypt cost 3"),
        ("$2b$10$short", "not a valid bcrypt hash"),
        ("pbkdf2_sha256$10$salt$not*base64", "not a valid Django PBKDF2"),
        ("scrypt$1000$salt$8$1$" + "A" * 88, "power of two"),
        ("scrypt$16$salt$8$1$AAAA", "64 bytes"),
        ("$argon2id$v=19$m=999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "over the caps"),
        ("$argon2id$garbage", "not a valid argon2"),
        ("x" * 600, "at most 512"),
    ],
)
def test_refused_with_a_reason(stored: str, reason: str) -> None:
    with pytest.raises(foreign_hashes.UnknownHash, match=reason):
        foreign_hashes.scheme(stored)
    assert HASHER.verify(stored, "anything") is False


def test_djangos_wrappers_are_taken_off() -> None:
    inner = make_hash("argon2id", "pw")
    assert foreign_hashes.canonical("argon2" + inner) == inner
    bc = make_hash("bcrypt", "pw")
    assert foreign_hashes.canonical("bcrypt$" + bc) == bc
