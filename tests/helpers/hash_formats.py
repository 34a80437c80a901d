"""Password hashes of every format `relatch user import` accepts, made cheaply for tests
and the bench (low-cost parameters: the verify reads them from each hash)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt
from argon2 import PasswordHasher, Type

SCHEMES = ("argon2id", "argon2i", "bcrypt", "pbkdf2_sha256", "pbkdf2_sha1", "scrypt")
_ARGON2 = {
    t: PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=t) for t in (Type.ID, Type.I)
}


def make_hash(scheme: str, password: str, *, prefix: str = "$2b$") -> str:
    """`password` hashed as the system named by `scheme` stores it (Django's formats for
    pbkdf2 and scrypt); `prefix` picks bcrypt's variant ($2a$, $2b$, $2y$)."""
    secret = password.encode()
    salt = secrets.token_hex(8)
    if scheme == "argon2id":
        return _ARGON2[Type.ID].hash(password)
    if scheme == "argon2i":
        return _ARGON2[Type.I].hash(password)
    if scheme == "bcrypt":
        made = bcrypt.hashpw(secret[:72], bcrypt.gensalt(rounds=4)).decode()
        return prefix + made[4:]
    if scheme in ("pbkdf2_sha256", "pbkdf2_sha1"):
        digest = hashlib.pbkdf2_hmac(scheme.removeprefix("pbkdf2_"), secret, salt.encode(), 10)
        return f"{scheme}$10${salt}${base64.b64encode(digest).decode()}"
    if scheme == "scrypt":
        digest = hashlib.scrypt(secret, salt=salt.encode(), n=16, r=8, p=1, dklen=64)
        return f"scrypt$16${salt}$8$1${base64.b64encode(digest).decode()}"
    raise ValueError(scheme)
