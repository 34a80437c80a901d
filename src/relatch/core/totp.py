"""TOTP (RFC 6238, SHA-1, 6 digits, 30 s) for the second factor, on top of pyotp.

Pure: the caller passes the time and the last step already used.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp

ISSUER = "Relatch"
DIGITS = 6
INTERVAL = 30
# One step either side: clocks of phones drift (RFC 6238 5.2 recommends at most one).
DRIFT_STEPS = 1


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226 recommends 160), from `secrets` via pyotp."""
    return pyotp.random_base32(32)


def provisioning_url(secret: str, account_name: str) -> str:
    """The otpauth:// URL an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=account_name, issuer_name=ISSUER
    )


def step_at(unix_time: int) -> int:
    return unix_time // INTERVAL


def looks_like_token(text: str) -> bool:
    token = text.strip().replace(" ", "")
    return len(token) == DIGITS and token.isascii() and token.isdigit()


@dataclass(frozen=True)
class Match:
    step: int


def verify(secret: str, token: str, unix_time: int, last_step: int) -> Match | None:
    """The step the token belongs to, if it is valid now and newer than `last_step`.

    Replay: a step at or before `last_step` was already used (or is older than a used
    one) and is refused, so a token seen over a shoulder or a proxy cannot be sent twice.
    """
    candidate = token.strip().replace(" ", "")
    if not looks_like_token(candidate):
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    now_step = step_at(unix_time)
    found: int | None = None
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        # Timing: every window compared, with compare_digest.
        if hmac.compare_digest(otp.generate_otp(step), candidate) and step > last_step:
            found = step
    return Match(found) if found is not None else None


def token_at(secret: str, unix_time: int) -> str:
    """The token for a time (tests and the CLI)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).generate_otp(step_at(unix_time))
