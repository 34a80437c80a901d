"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"), pure.

A browser that signed in to, or reset, an account successfully gets a random device id in
a signed cookie. The cookie alone grants nothing: services/known_clients.py remembers the
device per account, as a keyed digest of (account address, device id), so a cookie earned
on one account is an unknown client on every other one, and a reset forgets it.

- Forgery: `<id>.<mac>`, the MAC an HMAC-SHA256 of the id under a purpose key derived from
  the secret key, checked in constant time against the current and every fallback key.
  A cookie that does not verify is ignored before any database lookup.
- Guessing an id: 128 random bits from `secrets`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
MAX_COOKIE = 100


def _mac(secret: bytes, device_id: str) -> str:
    key = hmac.new(secret, b"relatch:device-cookie", hashlib.sha256).digest()
    raw = hmac.new(key, device_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_id() -> str:
    return secrets.token_urlsafe(16)


def cookie_value(secret: bytes, device_id: str) -> str:
    return f"{device_id}.{_mac(secret, device_id)}"


def read(keys: Iterable[bytes], value: str | None) -> str | None:
    """The device id of a cookie value, or None (absent, malformed or forged)."""
    if not value or len(value) > MAX_COOKIE:
        return None
    device_id, _, mac = value.partition(".")
    if not _ID.match(device_id):
        return None
    ok = False
    for key in keys:
        # Timing: compare_digest, and no early exit between keys.
        ok |= hmac.compare_digest(_mac(key, device_id).encode(), mac.encode())
    return device_id if ok else None
