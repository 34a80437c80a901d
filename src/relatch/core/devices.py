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

import re
import secrets
from collections.abc import Iterable

from relatch.core import keyed

_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
MAX_COOKIE = 100


def new_id() -> str:
    return secrets.token_urlsafe(16)


def cookie_value(secret: bytes, device_id: str) -> str:
    return f"{device_id}.{keyed.digest(secret, keyed.DEVICE_COOKIE, device_id)}"


def read(keys: Iterable[bytes], value: str | None) -> str | None:
    """The device id of a cookie value, or None (absent, malformed or forged)."""
    if not value or len(value) > MAX_COOKIE:
        return None
    device_id, _, mac = value.partition(".")
    if not _ID.match(device_id):
        return None
    # Timing: constant-time compare under every key, no early exit (core/keyed.py).
    ok = keyed.matches(keys, keyed.DEVICE_COOKIE, device_id, stored=mac)
    return device_id if ok else None
