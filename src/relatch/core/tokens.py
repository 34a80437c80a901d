"""Session JWTs: subject, issue time, sign-in time, expiry, the credential generation and
the server-side session record they belong to (`sid`, issue 14).

`iat` is when this token was made; `auth_time` (as in OIDC Core 2) is when the person
signed in with their password and second factor. They differ only for a token that renews
a session (a password change hands the caller a new token for the new generation): that
token keeps the sign-in time and the expiry of the session it renews.
"""

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
    auth_time: int  # when the person signed in; `issued_at` for tokens without the claim
    # The public id of the session record (services/sign_in_sessions.py); None for a token
    # issued before sessions were recorded (migration 0015_sessions).
    session_id: str | None = None


def issue(
    secret: bytes,
    issuer: str,
    account_id: int,
    generation: int,
    now: int,
    ttl: int,
    *,
    auth_time: int | None = None,
    session_id: str | None = None,
) -> str:
    """A session token; `auth_time` is the sign-in it renews (None: a sign-in now).

    Second-factor bypass and session stretching (issue 8): a renewed token must not count
    as a newer sign-in (sudo mode reads `auth_time`) nor outlive the session it renews, so
    both come from the original sign-in, never from `now`.
    """
    signed_in = now if auth_time is None else min(auth_time, now)
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": str(account_id),
        "gen": generation,
        "iat": now,
        "auth_time": signed_in,
        "exp": signed_in + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    if session_id is not None:
        claims["sid"] = session_id
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
            # Tokens issued before `auth_time` existed signed in when they were issued;
            # a sign-in can never be later than the token that carries it.
            auth_time = min(int(data.get("auth_time", iat)), iat)
            sid = data.get("sid")
            if sid is not None and not isinstance(sid, str):
                return None
        except (TypeError, ValueError):
            return None
        # Expiry checked against the injected clock, not the wall clock; a token
        # "issued" in the future (clock skew beyond a minute) is refused too.
        if exp <= now or iat > now + 60:
            return None
        return SessionClaims(account_id, gen, iat, str(data.get("jti", "")), auth_time, sid)
    return None


def signed_in_within(claims: SessionClaims, now: int, seconds: int) -> bool:
    """Whether the sign-in that issued these claims is at most `seconds` old ("sudo mode").

    Inclusive: a token exactly `seconds` old is still recent. A token from up to a minute
    in the future (clock skew, which `decode` tolerates) counts as recent. Measured from
    `auth_time`: a token renewed by a password change is as old as its sign-in.
    """
    return now - claims.auth_time <= seconds
