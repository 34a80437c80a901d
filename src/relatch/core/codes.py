"""Reset codes: 8 Crockford base32 characters shown as XXXX-XXXX, stored as keyed digests
(core/keyed.py: RESET_CODE, RECOVERY_CODE; activation codes, ACTIVATION_CODE, share the format).

Beside each code, the mail's link carries a token `<row id>.<secret>` (`link_token`): the
id finds the code's row, the 256-bit secret proves the link (stored as a keyed digest too,
core/keyed.py: RESET_LINK).
"""

from __future__ import annotations

import re
import secrets

# Crockford base32: digits and letters without I, L, O, U (no look-alikes, no accidental words).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8  # 40 bits: with 5 tries per code, one guess run succeeds with p = 5 / 2**40.
_DECODE_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", "- \t")
LINK_SECRET_BYTES = 32  # 256 bits: no try counter needed, nobody guesses this
MAX_LINK_TOKEN = 128
_ROW_ID = re.compile(r"[0-9]{1,18}")
_LINK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,100}")


def generate() -> str:
    """A new code in canonical form (8 characters, no hyphen), from `secrets`."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    """Canonical code as people see it: `XXXX-XXXX`."""
    return f"{code[:4]}-{code[4:]}"


def canonical(entered: str) -> str | None:
    """What a person typed, as a canonical code, or None if it cannot be one.

    Accepts any case, with or without the hyphen or spaces, and Crockford's
    decoding aliases (O for 0, I and L for 1).
    """
    text = entered.strip().upper().translate(_SEPARATORS).translate(_DECODE_ALIASES)
    if len(text) != LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return text


def link_secret() -> str:
    """The secret half of a mailed link's token, from `secrets` (256 bits, URL-safe)."""
    return secrets.token_urlsafe(LINK_SECRET_BYTES)


def link_token(row_id: int, secret: str) -> str:
    return f"{row_id}.{secret}"


def split_link_token(token: str) -> tuple[int, str] | None:
    """(row id, secret) of a link token, or None if it cannot be one (bounded, ASCII only:
    `"²".isdigit()` is true and int() refuses it)."""
    if len(token) > MAX_LINK_TOKEN:
        return None
    raw_id, sep, secret = token.partition(".")
    if not sep or not _ROW_ID.fullmatch(raw_id) or not _LINK_SECRET.fullmatch(secret):
        return None
    return int(raw_id), secret
