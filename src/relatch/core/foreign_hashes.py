"""Password hashes Relatch did not make: recognised at import, verified at sign-in.

`relatch user import` stores the hashes of another system as they are (it never sees a
password); the first successful sign-in, reset or password change replaces such a hash
by Relatch's argon2id (core/hashing.py `needs_rehash`). Accepted formats:

| scheme | stored as | verified with |
| --- | --- | --- |
| argon2id, argon2i | PHC string `$argon2id$v=19$m=..,t=..,p=..$salt$hash` | argon2-cffi |
| bcrypt | `$2a$`, `$2b$`, `$2y$` + cost + 53 characters | the `bcrypt` package |
| pbkdf2_sha256, pbkdf2_sha1 | Django: `pbkdf2_sha256$iterations$salt$base64` | pbkdf2_hmac |
| scrypt | Django: `scrypt$n$salt$r$p$base64` (64-byte key) | hashlib.scrypt |

Every parameter is read from the hash itself (a bcrypt-4 test row verifies as a bcrypt-12
production one). Threats:
- Denial of service by an imported hash: its parameters choose the cost of every sign-in
  to that account, so a hash whose cost passes the caps below is refused at import
  (a sign-in to it would hold a hashing thread for seconds, or gigabytes for scrypt).
- Timing: the digest is compared with hmac.compare_digest, never `==`. The verify time
  of a foreign hash differs from argon2's; what that tells a prober: docs/security.md.
- bcrypt reads only the first 72 bytes of a password; the systems that made these
  hashes truncated silently, so the verify truncates the same way (bcrypt 5 refuses
  longer input instead).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

import bcrypt
from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError

# Caps on the cost an imported hash may carry (denial of service, above). Each is well
# above what its scheme's current defaults use: argon2 OWASP 19 MiB, bcrypt 10-12,
# Django 5.x PBKDF2 1,000,000 iterations, Django scrypt n=2^14 r=8 (16 MiB).
MAX_ARGON2_MEMORY_KIB = 262_144
MAX_ARGON2_TIME_COST = 16
MAX_BCRYPT_COST = 15
MAX_PBKDF2_ITERATIONS = 3_000_000
MAX_SCRYPT_BYTES = 256 * 1024 * 1024  # 128 * n * r
MAX_HASH_LENGTH = 512  # the column

BCRYPT_MAX_BYTES = 72

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_PBKDF2 = re.compile(r"pbkdf2_(sha256|sha1)\$(\d{1,9})\$([^$]{1,128})\$([A-Za-z0-9+/]+={0,2})")
_SCRYPT = re.compile(
    r"scrypt\$(\d{1,10})\$([^$]{1,128})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]+={0,2})"
)


class UnknownHash(ValueError):
    """Not a hash Relatch can verify, or one whose cost is over the caps; the message
    names why (never quoting the hash)."""


@dataclass(frozen=True)
class Pbkdf2:
    algorithm: str
    iterations: int
    salt: str
    digest: bytes


@dataclass(frozen=True)
class Scrypt:
    salt: str
    n: int
    r: int
    p: int
    digest: bytes


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise UnknownHash("its digest is not valid base64") from exc


def canonical(stored: str) -> str:
    """Django's wrappers of standard strings taken off: `argon2$argon2id$...` is the PHC
    string after `argon2`, and `bcrypt$$2b$...` the bcrypt one after `bcrypt$`."""
    if stored.startswith(("argon2$argon2id$", "argon2$argon2i$")):
        return stored.removeprefix("argon2")
    if stored.startswith("bcrypt$$2"):
        return stored.removeprefix("bcrypt$")
    return stored


def scheme(stored: str) -> str:
    """The scheme of `stored` ("argon2id", "bcrypt", ...), or UnknownHash with a reason."""
    if len(stored) > MAX_HASH_LENGTH:
        raise UnknownHash(f"a password hash has at most {MAX_HASH_LENGTH} characters")
    if stored.startswith(("$argon2id$", "$argon2i$")):
        _argon2_checked(stored)
        return "argon2id" if stored.startswith("$argon2id$") else "argon2i"
    if stored.startswith("$2"):
        found = _BCRYPT.fullmatch(stored)
        if found is None:
            raise UnknownHash("not a valid bcrypt hash")
        cost = int(found.group(1))
        if not 4 <= cost <= MAX_BCRYPT_COST:
            raise UnknownHash(f"bcrypt cost {cost} is outside 4..{MAX_BCRYPT_COST}")
        return "bcrypt"
    if stored.startswith("pbkdf2_"):
        return _pbkdf2(stored).algorithm
    if stored.startswith("scrypt$"):
        _scrypt(stored)
        return "scrypt"
    if stored.startswith("$argon2d$"):
        raise UnknownHash("argon2d is not accepted (not meant for passwords)")
    raise UnknownHash(
        "unknown hash format (accepted: argon2id, argon2i, bcrypt, Django's pbkdf2_sha256, "
        "pbkdf2_sha1 and scrypt)"
    )


def _argon2_checked(stored: str) -> None:
    try:
        params = extract_parameters(stored)
    except (InvalidHashError, ValueError) as exc:
        raise UnknownHash("not a valid argon2 hash") from exc
    if params.type not in (Type.ID, Type.I):
        raise UnknownHash("not an argon2id or argon2i hash")
    if params.memory_cost > MAX_ARGON2_MEMORY_KIB or params.time_cost > MAX_ARGON2_TIME_COST:
        raise UnknownHash("argon2 parameters over the caps (memory 256 MiB, time cost 16)")


def _pbkdf2(stored: str) -> Pbkdf2:
    found = _PBKDF2.fullmatch(stored)
    if found is None:
        raise UnknownHash("not a valid Django PBKDF2 hash")
    algorithm, iterations, salt, digest = found.groups()
    rounds = int(iterations)
    if not 1 <= rounds <= MAX_PBKDF2_ITERATIONS:
        raise UnknownHash(f"PBKDF2 iterations outside 1..{MAX_PBKDF2_ITERATIONS}")
    raw = _b64(digest)
    if not raw:
        raise UnknownHash("its digest is empty")
    return Pbkdf2(f"pbkdf2_{algorithm}", rounds, salt, raw)


def _scrypt(stored: str) -> Scrypt:
    found = _SCRYPT.fullmatch(stored)
    if found is None:
        raise UnknownHash("not a valid Django scrypt hash")
    n_text, salt, r_text, p_text, digest = found.groups()
    n, r, p = int(n_text), int(r_text), int(p_text)
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or p > 16:
        raise UnknownHash("scrypt parameters are not valid (n a power of two, r, p >= 1)")
    if 128 * n * r > MAX_SCRYPT_BYTES:
        raise UnknownHash("scrypt parameters over the cap (256 MiB)")
    raw = _b64(digest)
    if len(raw) != 64:
        raise UnknownHash("a Django scrypt digest has 64 bytes")
    return Scrypt(salt, n, r, p, raw)


def verify(stored: str, password: str) -> bool:
    """True when `password` matches the foreign hash `stored` (not argon2: core/hashing.py);
    False for a wrong password or a hash that cannot be read."""
    try:
        secret = password.encode()
        kind = scheme(stored)
        if kind == "bcrypt":
            return bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], stored.encode())
        if kind.startswith("pbkdf2_"):
            p = _pbkdf2(stored)
            name = p.algorithm.removeprefix("pbkdf2_")
            made = hashlib.pbkdf2_hmac(name, secret, p.salt.encode(), p.iterations)
            return hmac.compare_digest(made, p.digest)
        if kind == "scrypt":
            s = _scrypt(stored)
            # OpenSSL's memory bound: the V array (128 r (n+2)) and B (128 r p), with room.
            maxmem = 128 * s.r * (s.n + 2) + 128 * s.r * s.p + 1024 * 1024
            made = hashlib.scrypt(
                secret, salt=s.salt.encode(), n=s.n, r=s.r, p=s.p, maxmem=maxmem, dklen=64
            )
            return hmac.compare_digest(made, s.digest)
    except (UnknownHash, UnicodeEncodeError, ValueError):
        return False
    return False
