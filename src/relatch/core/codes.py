"""Reset codes: 8 Crockford base32 characters shown as XXXX-XXXX, stored as keyed digests
(core/keyed.py: RESET_CODE, RECOVERY_CODE)."""

from __future__ import annotations

import secrets

# Crockford base32: digits and letters without I, L, O, U (no look-alikes, no accidental words).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 8  # 40 bits: with 5 tries per code, one guess run succeeds with p = 5 / 2**40.
_DECODE_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", "- \t")


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
