"""Password rules: NFKC normalisation and the policy, each refusal with its reason."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relatch.core.errors import PasswordRejected

MIN_LENGTH = 8  # Edge Impulse's rule, NIST SP 800-63B 3.1.1.2 minimum
MAX_LENGTH = 1024  # bounds hashing work (long-password DoS) while allowing passphrases


def normalise(password: str) -> str:
    """NFKC, so that the same password typed on two keyboards hashes the same (NIST 800-63B)."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True)
class PasswordContext:
    """What a rule may look at besides the password itself."""

    username: str | None = None
    email: str | None = None


Rule = Callable[[str, PasswordContext], str | None]


def length_rule(password: str, _ctx: PasswordContext) -> str | None:
    n = len(password)
    if n < MIN_LENGTH:
        return f"Password is too short: use at least {MIN_LENGTH} characters (it has {n})"
    if n > MAX_LENGTH:
        return f"Password is too long: use at most {MAX_LENGTH} characters (it has {n})"
    return None


BASE_RULES: tuple[Rule, ...] = (length_rule,)


def check(password: str, ctx: PasswordContext, rules: Sequence[Rule] = BASE_RULES) -> str:
    """The normalised password, or PasswordRejected naming the first rule it breaks."""
    normalised = normalise(password)
    for rule in rules:
        reason = rule(normalised, ctx)
        if reason is not None:
            raise PasswordRejected(reason)
    return normalised
