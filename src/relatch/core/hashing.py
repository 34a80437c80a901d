"""argon2id hashing through argon2-cffi. Only infra.hashing_pool calls this.

Imported hashes of other formats (bcrypt, Django's PBKDF2 and scrypt, argon2i) verify
too (core/foreign_hashes.py) and always need a rehash: the first successful sign-in,
reset or password change stores Relatch's argon2id in their place."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from relatch.core import foreign_hashes

OWN_PREFIX = "$argon2id$"


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


class Hasher:
    def __init__(self, params: Argon2Params) -> None:
        self._ph = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        # Timing: a real hash to verify against when no account matched, so an unknown
        # user costs the same as a wrong password (enumeration by timing).
        self._dummy = self._ph.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches; `stored=None` runs a dummy verify and is False."""
        target = stored if stored is not None else self._dummy
        if not target.startswith(("$argon2id$", "$argon2i$")):
            return foreign_hashes.verify(target, password)
        try:
            ok = self._ph.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """True for every hash but an argon2id one at the configured parameters (imported
        hashes, argon2i, and argon2id made before RELATCH_ARGON2_* changed)."""
        if not stored.startswith(OWN_PREFIX):
            return True
        try:
            return self._ph.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True
