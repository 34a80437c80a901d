"""Keyed, purpose-salted digests of OAuth2 secrets (client secrets, codes, tokens).

Only these digests are stored (STYLE rule 3): a database dump hands out no credential.
A digest is looked up by equality on a unique index; every key (current and fallbacks)
gives one candidate, so a secret-key rotation does not log every client out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

CLIENT_SECRET = "oauth-client-secret"  # noqa: S105 (a purpose label, not a secret)
CODE = "oauth-code"
ACCESS = "oauth-access-token"
REFRESH = "oauth-refresh-token"

# Longer input is refused before any work (bounded cost per request).
MAX_LENGTH = 256


def digest(secret: bytes, purpose: str, value: str) -> str:
    # Purpose salt: an access-token digest can never match a refresh token or a code.
    purpose_key = hmac.new(secret, b"relatch:" + purpose.encode(), hashlib.sha256).digest()
    return hmac.new(purpose_key, value.encode(), hashlib.sha256).hexdigest()


def candidates(keys: Sequence[bytes], purpose: str, value: str) -> list[str]:
    """The digests of `value` under every accepted key, for an indexed IN lookup."""
    if not value or len(value) > MAX_LENGTH:
        return []
    return [digest(k, purpose, value) for k in keys]


def matches(keys: Sequence[bytes], purpose: str, value: str, stored: str) -> bool:
    """Constant-time comparison under every accepted key, no early exit."""
    if not value or len(value) > MAX_LENGTH:
        return False
    found = False
    for key in keys:
        found |= hmac.compare_digest(digest(key, purpose, value), stored)
    return found


def new_token(mark: str, nbytes: int = 32) -> str:
    """A random token with a readable mark (secret scanners and logs can tell them apart)."""
    return f"{mark}{secrets.token_urlsafe(nbytes)}"
