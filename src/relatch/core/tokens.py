"""Session JWTs: subject, issue time, expiry and the account's credential generation."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
AUDIENCE = "relatch-session"


@dataclass(frozen=True)
class SessionClaims:
    account_id: int
    generation: int
    issued_at: int
    jti: str


def issue(secret: bytes, issuer: str, account_id: int, generation: int, now: int, ttl: int) -> str:
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": str(account_id),
        "gen": generation,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(token: str, keys: Sequence[bytes], issuer: str, now: int) -> SessionClaims | None:
    """Claims of a valid token signed by any accepted key, else None."""
    for key in keys:
        try:
            # The algorithm is pinned: no "none", no RS/HS confusion.
            data = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=issuer,
                # Time claims are checked below against the injected clock.
                options={
                    "require": ["sub", "iat", "exp", "gen"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            continue
        try:
            exp, iat, gen, sub = int(data["exp"]), int(data["iat"]), int(data["gen"]), data["sub"]
            account_id = int(sub)
        except (TypeError, ValueError):
            return None
        # Expiry checked against the injected clock, not the wall clock; a token
        # "issued" in the future (clock skew beyond a minute) is refused too.
        if exp <= now or iat > now + 60:
            return None
        return SessionClaims(account_id, gen, iat, str(data.get("jti", "")))
    return None


def signed_in_within(claims: SessionClaims, now: int, seconds: int) -> bool:
    """Whether the sign-in that issued these claims is at most `seconds` old ("sudo mode").

    Inclusive: a token exactly `seconds` old is still recent. A token from up to a minute
    in the future (clock skew, which `decode` tolerates) counts as recent.
    """
    return now - claims.issued_at <= seconds
