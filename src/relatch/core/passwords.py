"""Password rules: NFKC normalisation and the policy, each refusal with its reason."""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from relatch.core import text
from relatch.core.errors import PasswordRejected

MIN_LENGTH = 8  # Edge Impulse's rule, NIST SP 800-63B 3.1.1.2 minimum
MAX_LENGTH = 1024  # bounds hashing work (long-password DoS) while allowing passphrases


def normalise(password: str) -> str:
    """NFKC, so that the same password typed on two keyboards hashes the same (NIST 800-63B).

    NFKC leaves a lone surrogate as it is, and hashing it then fails (no UTF-8 encoding):
    callers take passwords only through a guard (text.is_secret, or `check` below).
    """
    return unicodedata.normalize("NFKC", password)


UNTYPABLE = (
    "Password contains a character that cannot be part of a password (NUL or an unpaired "
    "surrogate): type it again"
)


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

# Parts of an identifier shorter than this are too common to refuse ("bob", "jo").
MIN_PERSONAL_PART = 4
_SEPARATORS = re.compile(r"[._+\-]")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _personal_parts(ctx: PasswordContext) -> list[tuple[str, str]]:
    """(what, value) pairs a password must not contain, folded, long enough to matter."""
    found: list[tuple[str, str]] = []
    if ctx.username:
        found.append(("your username", _fold(ctx.username)))
    if ctx.email and "@" in ctx.email:
        local = _fold(ctx.email.rsplit("@", 1)[0])
        found.append(("the part of your e-mail address before the @", local))
        plain = local.split("+", 1)[0]  # sub-address tags: jane+shop@ is still jane
        found.append(("the part of your e-mail address before the @", plain))
    return [(what, value) for what, value in found if len(value) >= MIN_PERSONAL_PART]


def personal_info_rule(password: str, ctx: PasswordContext) -> str | None:
    """Targeted guessing (NIST SP 800-63B 5.1.1.2 "context-specific words", ASVS 5.0 6.2.11):
    an attacker who knows the account tries its own name first."""
    folded = _fold(password)
    squeezed = _SEPARATORS.sub("", folded)
    for what, value in _personal_parts(ctx):
        # "jane.doe" is also refused as "JaneDoe2024" or "jane_doe!": separators ignored.
        bare = _SEPARATORS.sub("", value)
        if value in folded or (len(bare) >= MIN_PERSONAL_PART and bare in squeezed):
            return f"Password contains {what}: choose one that does not include it"
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords (sources: data/SOURCES.md)."""
    raw = resources.files("relatch.core").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(raw).decode().split("\n")) - {""}


def common_password_rule(password: str, _ctx: PasswordContext) -> str | None:
    """Dictionary and credential-stuffing attacks try these first (NIST SP 800-63B 5.1.1.2,
    OWASP ASVS 5.0 6.2.4); compared case-insensitively, as Django does."""
    if _fold(password).strip() in common_passwords():
        return (
            "Password is too common: it appears in lists of common or breached passwords; "
            "choose a longer or less predictable one, such as a few unrelated words"
        )
    return None


# NIST SP 800-63B: length, no composition rules, no context words, no known-bad passwords.
# "Not the current password" needs an argon2 verify: services/password_policy.py adds it.
DEFAULT_RULES: tuple[Rule, ...] = (length_rule, personal_info_rule, common_password_rule)


def check(password: str, ctx: PasswordContext, rules: Sequence[Rule] = BASE_RULES) -> str:
    """The normalised password, or PasswordRejected naming the first rule it breaks."""
    # Not a rule that can be left out: a lone surrogate cannot be hashed (a 500), and a
    # password holding NUL could never be typed again into the API, which refuses NUL.
    if not text.is_secret(password):
        raise PasswordRejected(UNTYPABLE)
    normalised = normalise(password)
    for rule in rules:
        reason = rule(normalised, ctx)
        if reason is not None:
            raise PasswordRejected(reason)
    return normalised
