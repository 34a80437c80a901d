"""Forced re-authentication (OIDC Core 3.1.2.1): `prompt=login` and `max_age`.

Threat: someone at a browser where the owner is still signed in (a shared or unlocked
computer) completes a sign-in that the client asked to be a fresh one. Before issue 8
the consent step's POST was trusted to follow a sign-in: posting `step=consent` directly
returned a code without the password, and `max_age` was ignored.

The decision is made on the server at every request that would issue something, never
only when a page is rendered:

- `max_age=N`: the sign-in cookie's auth_time is at most N seconds old;
- `prompt=login` (and `max_age` that has run out): the password (and the second factor)
  was given *in this authorization request*. That sign-in POST answers with a proof
  (hidden form field): an HMAC, under a key derived from the secret key, over the
  request's query string, the account and the sign-in time. The consent POST is fresh
  only with a valid proof for the same query and account, at most PROOF_TTL old, whose
  sign-in is the session's own (or older than it). A page rendered by a GET carries no
  proof, so it cannot stand in for the password; a proof from another request (another
  client, state or nonce) does not count.

The ID token carries auth_time (the cookie's, or this sign-in's) whenever one is issued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from relatch.core import keyed
from relatch.services.context import Services

FIELD = "flow"
PROOF_TTL = 600  # a consent page left open longer asks for the password again


@dataclass(frozen=True)
class Demand:
    """What the client asked about the sign-in's freshness."""

    prompts: frozenset[str]
    max_age: int | None

    @property
    def silent(self) -> bool:
        return "none" in self.prompts


def demand(data: Mapping[str, str]) -> Demand:
    """From the request's parameters, already checked (oauth/params.py: max_age digits)."""
    max_age = data.get("max_age")
    return Demand(
        frozenset((data.get("prompt") or "").split()),
        int(max_age) if max_age is not None and max_age.isascii() and max_age.isdigit() else None,
    )


def _query_hash(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def prove(svc: Services, query: str, user_id: int, signed_at: int) -> str:
    """The proof that the password was given at `signed_at` for this request."""
    mac = keyed.digest(svc.keys, keyed.OAUTH_REAUTH, user_id, signed_at, _query_hash(query))
    return f"{signed_at}.{mac}"


def proven_at(svc: Services, query: str, user_id: int, proof: str, now: int) -> int | None:
    """The sign-in time a valid, live proof for this request and account states, or None."""
    stamp, _, mac = proof.partition(".")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or len(mac) != 64:
        return None
    signed_at = int(stamp)
    ok = keyed.matches(
        svc.keys, keyed.OAUTH_REAUTH, user_id, signed_at, _query_hash(query), stored=mac
    )
    if not ok or not 0 <= now - signed_at <= PROOF_TTL:
        return None
    return signed_at


def fresh_enough(wanted: Demand, auth_time: int, now: int, proven: int | None) -> bool:
    """Whether a session signed in at `auth_time` may be used for this request now."""
    # The proof counts only for the session it came from (or a newer sign-in).
    in_this_request = proven is not None and auth_time >= proven
    if "login" in wanted.prompts and not in_this_request:
        return False
    if wanted.max_age is not None and now - auth_time > wanted.max_age:
        return in_this_request
    return True
