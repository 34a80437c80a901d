"""Encryption at rest for secrets that must be read back (TOTP keys).

A TOTP key cannot be stored as a one-way digest: verifying a token needs the key itself.
So it is sealed with AES-256-GCM under a key derived by HKDF from the secret key, with
its own purpose, and bound to the account through the associated data (a sealed value
copied to another account's row does not open). A database dump alone reveals nothing.
Rotation: sealing uses the current key; opening tries the current and every fallback key.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
NONCE_BYTES = 12


def _key(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"relatch:seal:" + purpose.encode()
    ).derive(secret)


def seal(secret: bytes, purpose: str, context: str, plaintext: str) -> str:
    # Random 96-bit nonce: few values are sealed per key, so a collision is not a risk.
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(_key(secret, purpose)).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_sealed(keys: Sequence[bytes], purpose: str, context: str, value: str) -> str | None:
    """The plaintext, or None if no accepted key opens it (tampered, wrong account, old key)."""
    version, _, body = value.partition(":")
    if version != VERSION:
        return None
    try:
        raw = base64.urlsafe_b64decode(body.encode())
    except ValueError:
        return None
    if len(raw) <= NONCE_BYTES:
        return None
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    for secret in keys:
        try:
            plain = AESGCM(_key(secret, purpose)).decrypt(nonce, sealed, context.encode())
        except InvalidTag:
            continue
        return plain.decode()
    return None
