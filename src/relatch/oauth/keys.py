"""ID-token signing keys: RS256, kept in the database, rotated by `relatch oauth-key rotate`.

The private half is sealed with AES-GCM under a key derived from the secret key
(core/sealing.py): a database dump alone cannot forge ID tokens. After a rotation the old
key stops signing at once but stays in the JWKS for PUBLISH_GRACE, so ID tokens it signed
keep verifying until they expire (relying parties cache JWKS; they must find the kid).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from relatch.core import keyed, sealing
from relatch.services.context import Services
from relatch.storage.db import transaction
from relatch.storage.models_oauth import OAuthSigningKey

log = logging.getLogger(__name__)

ALG = "RS256"
RSA_BITS = 2048
SEAL_PURPOSE = keyed.SEAL_OAUTH_SIGNING_KEY
# Longer than any ID token lives (ID_TOKEN_TTL) plus generous JWKS caching by clients.
PUBLISH_GRACE = timedelta(days=2)


def _context(kid: str) -> str:
    # Bound to the kid: a sealed key copied to another row does not open there.
    return f"oauth-key:{kid}"


def _create(svc: Services, s: Session, now: datetime) -> OAuthSigningKey:
    key = RSAKey.generate_key(
        RSA_BITS, parameters={"alg": ALG, "use": "sig"}, private=True, auto_kid=True
    )
    kid = str(key.kid)
    private = json.dumps(key.as_dict(private=True))
    row = OAuthSigningKey(
        kid=kid,
        alg=ALG,
        public_jwk=json.dumps(key.as_dict(private=False)),
        sealed_private=sealing.seal(svc.settings.secret, SEAL_PURPOSE, _context(kid), private),
        created_at=now,
    )
    s.add(row)
    s.flush()
    return row


def rotate(svc: Services) -> str:
    """A new signing key; the older ones retire now and stay published for a while."""
    now = svc.clock()
    with transaction(svc.sessions) as s:
        s.execute(
            update(OAuthSigningKey)
            .where(OAuthSigningKey.retired_at.is_(None))
            .values(retired_at=now, published_until=now + PUBLISH_GRACE)
        )
        row = _create(svc, s, now)
        kid = row.kid
    log.info("OAuth signing key rotated: new kid %s", kid)
    return kid


def current(svc: Services) -> tuple[str, RSAKey]:
    """(kid, private key) of the key that signs now; created on first use."""
    with svc.sessions() as s:
        row = s.scalars(
            select(OAuthSigningKey)
            .where(OAuthSigningKey.retired_at.is_(None))
            .order_by(OAuthSigningKey.id.desc())
        ).first()
    if row is None:
        with transaction(svc.sessions) as s:
            # Re-checked inside the write transaction: two first requests make one key.
            row = s.scalars(
                select(OAuthSigningKey)
                .where(OAuthSigningKey.retired_at.is_(None))
                .order_by(OAuthSigningKey.id.desc())
            ).first() or _create(svc, s, svc.clock())
    plain = sealing.open_sealed(svc.keys, SEAL_PURPOSE, _context(row.kid), row.sealed_private)
    if plain is None:
        # Only after the secret key was lost or changed without a fallback: fail closed.
        raise RuntimeError("the OAuth signing key cannot be opened with any accepted secret key")
    return row.kid, RSAKey.import_key(json.loads(plain))


def jwks(svc: Services) -> dict[str, Any]:
    """The public keys relying parties may meet: the signing key and recently retired ones."""
    now = svc.clock()
    with svc.sessions() as s:
        rows = s.scalars(
            select(OAuthSigningKey)
            .where(
                or_(
                    OAuthSigningKey.retired_at.is_(None),
                    OAuthSigningKey.published_until > now,
                )
            )
            .order_by(OAuthSigningKey.id.desc())
        ).all()
    return {"keys": [json.loads(r.public_jwk) for r in rows]}
