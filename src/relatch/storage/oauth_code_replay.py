"""A replayed authorization code revokes the tokens it already bought (RFC 6749 4.1.2).

Threat: an attacker who intercepted a code (referrer, log, open redirector, malicious app
on the device) races the client to the token endpoint. Whoever comes second gets
`invalid_grant`; if that is the client, the attacker holds live tokens. RFC 6749 4.1.2
says the server SHOULD then revoke every token issued from the code: a second use means
one of the two holders is not the client, and we cannot tell which, so both lose. The
tokens are found by `oauth_tokens.code_id`, which a refresh rotation copies to the new
row (store.save_token), so the whole refresh family dies.

Two ways a replay shows up, both handled in the transaction that detects it:
- late: the code is already consumed when the second request looks it up
  (`revoke_if_replayed`, from the grant's `query_authorization_code`);
- raced: both requests found the code live and the second loses the conditional UPDATE
  that consumes it (store.save_token calls `revoke_family` before answering).
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relatch.core import keyed
from relatch.core import oauth_digests as digests
from relatch.storage.context import StoreContext
from relatch.storage.db import rowcount, transaction
from relatch.storage.models_oauth import OAuthCode, OAuthToken
from relatch.storage.oauth_records import Client

log = logging.getLogger(__name__)


def revoke_family(s: Session, code_id: int, now: datetime) -> int:
    """Revoke every live token issued from this code or rotated from one; how many died."""
    revoked = rowcount(
        s.execute(
            update(OAuthToken)
            .where(OAuthToken.code_id == code_id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    )
    # The code row id and a count only: never the code or a token (STYLE rule 12).
    log.warning("authorization code %s replayed; revoked %s token(s)", code_id, revoked)
    return revoked


def _proves_pkce(code: OAuthCode, verifier: str | None) -> bool:
    """With PKCE, a replay only counts if it carries the right verifier.

    Denial of service: someone who merely saw the code (a log, a referrer) but lacks the
    verifier could never have redeemed it, so the live tokens are the client's own;
    letting such a request revoke them would hand a spectator a kill switch. A code
    without a challenge belongs to a confidential client, already authenticated here.
    """
    if not code.code_challenge:
        return True
    if not verifier or not CODE_VERIFIER_PATTERN.match(verifier):
        return False
    expected = create_s256_code_challenge(verifier)
    # Only S256 challenges are ever stored (grants.StrictCodeChallenge).
    return hmac.compare_digest(expected.encode(), code.code_challenge.encode())


def revoke_if_replayed(
    svc: StoreContext, code: str, client: Client, code_verifier: str | None
) -> int:
    """Called when no live code matched: if `code` is one this client already redeemed,
    revoke every token issued from it, in this same transaction. How many died."""
    wanted = digests.candidates(svc.keys, keyed.OAUTH_CODE, code)
    if not wanted:
        return 0
    with transaction(svc.sessions) as s:
        row = s.scalars(
            select(OAuthCode).where(
                OAuthCode.digest.in_(wanted),
                # Bound to the client (RFC 6749 4.1.3): another client's replay of a code
                # it was never issued proves nothing about this client's tokens.
                OAuthCode.client_id == client.client_id,
                OAuthCode.consumed_at.is_not(None),
            )
        ).first()
        # An expired code is still a replay once used: its tokens outlive it.
        if row is None or not _proves_pkce(row, code_verifier):
            return 0
        return revoke_family(s, row.id, svc.clock())
