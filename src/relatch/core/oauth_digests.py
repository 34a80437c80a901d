"""Digests of OAuth2 secrets (client secrets, codes, tokens): the bound on what a client sends.

Only keyed, purpose-salted digests are stored (STYLE rule 3, core/keyed.py: OAUTH_*): a
database dump hands out no credential. A digest is looked up by equality on a unique
index; every key (current and fallbacks) gives one candidate, so a secret-key rotation
does not log every client out.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from relatch.core import keyed

# Longer input is refused before any work (bounded cost per request).
MAX_LENGTH = 256


def candidates(keys: Iterable[bytes], purpose: keyed.Purpose, value: str) -> list[str]:
    """The digests of `value` under every accepted key, for an indexed IN lookup."""
    if not value or len(value) > MAX_LENGTH:
        return []
    return keyed.candidates(keys, purpose, value)


def matches(keys: Iterable[bytes], purpose: keyed.Purpose, value: str, stored: str) -> bool:
    """Constant-time comparison under every accepted key, no early exit."""
    if not value or len(value) > MAX_LENGTH:
        return False
    return keyed.matches(keys, purpose, value, stored=stored)


def new_token(mark: str, nbytes: int = 32) -> str:
    """A random token with a readable mark (secret scanners and logs can tell them apart)."""
    return f"{mark}{secrets.token_urlsafe(nbytes)}"
