"""API keys: `ei_<prefix>_<secret>`, looked up by prefix, stored only as a keyed digest.

The prefix (8 characters, not secret) is the index and the name shown in lists and logs;
the whole key is checked against a purpose-salted HMAC digest in constant time (core/keyed.py,
API_KEY), so a database dump holds nothing that authenticates (OWASP ASVS 5.0 6.4 / 11.4).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# `ei_` as Edge Impulse's own keys: the official npm client's `authenticate({method: "apiKey"})`
# refuses any key that does not start with it. Keys issued before with `rl_` stay valid.
MARK = "ei_"
MARKS = (MARK, "rl_")
PREFIX_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # lower-case Crockford: no `_` or `-`
PREFIX_LENGTH = 8
SECRET_BYTES = 32  # 256 bits: guessing is hopeless, no rate limit needed for strength
MAX_LENGTH = 128  # longer input is refused before any work (bounded cost per request)


@dataclass(frozen=True)
class ParsedKey:
    prefix: str  # `ei_` (or `rl_`) + 8 characters, the lookup index
    key: str  # the whole key as presented


def generate() -> tuple[str, str]:
    """A new key and its prefix: (`ei_abcd2345_<43 url-safe characters>`, `ei_abcd2345`)."""
    prefix = MARK + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}", prefix


def parse(presented: str) -> ParsedKey | None:
    """The prefix of a well-formed key, or None (then no database lookup is made)."""
    key = presented.strip()
    if len(key) > MAX_LENGTH or not key.startswith(MARKS):
        return None
    prefix_len = len(MARK) + PREFIX_LENGTH
    prefix, sep, rest = key[:prefix_len], key[prefix_len : prefix_len + 1], key[prefix_len + 1 :]
    if sep != "_" or not rest or any(c not in PREFIX_ALPHABET for c in prefix[len(MARK) :]):
        return None
    return ParsedKey(prefix=prefix, key=key)
