"""The OAuth clients an account has let in (issue 14): which hold a consent or a live
token for it, and taking all of that back at once.

Every query names the account: a client that holds nothing for it, or does not exist,
looks the same (services/oauth_apps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from relatch.storage.db import rowcount
from relatch.storage.models_oauth import OAuthClient, OAuthCode, OAuthConsent, OAuthToken


@dataclass
class App:
    client_id: str
    name: str
    granted: datetime
    scopes: set[str] = field(default_factory=set)


def held_by(s: Session, account_id: int, generation: int, now: datetime) -> list[App]:
    """The clients with a consent, or a token that still works, for this account; each
    with the union of their scopes and when it was first let in. Oldest first."""
    apps: dict[str, App] = {}
    consents = s.execute(
        select(
            OAuthConsent.client_id, OAuthClient.name, OAuthConsent.scope, OAuthConsent.granted_at
        )
        .join(OAuthClient, OAuthClient.client_id == OAuthConsent.client_id)
        .where(OAuthConsent.user_id == account_id)
    ).all()
    tokens = s.execute(
        select(OAuthToken.client_id, OAuthClient.name, OAuthToken.scope, OAuthToken.issued_at)
        .join(OAuthClient, OAuthClient.client_id == OAuthToken.client_id)
        .where(
            OAuthToken.user_id == account_id,
            OAuthToken.revoked_at.is_(None),
            OAuthToken.generation == generation,
            or_(OAuthToken.access_expires_at > now, OAuthToken.refresh_expires_at > now),
        )
    ).all()
    for client_id, name, scope, at in [*consents, *tokens]:
        app = apps.setdefault(client_id, App(client_id, name, at))
        app.granted = min(app.granted, at)
        app.scopes.update(scope.split())
    return sorted(apps.values(), key=lambda a: (a.granted, a.client_id))


def revoke(s: Session, account_id: int, client_id: str, now: datetime) -> bool:
    """Every access and refresh token, unused code and the consent of this account at this
    client go, in the caller's transaction; False if it held none of them."""
    tokens = s.execute(
        update(OAuthToken)
        .where(
            OAuthToken.user_id == account_id,
            OAuthToken.client_id == client_id,
            OAuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    # A code not yet exchanged would mint a new token: it is spent too (marked used, which
    # every reader refuses, as storage/one_time.py kills a kind without a revoked column).
    codes = s.execute(
        update(OAuthCode)
        .where(
            OAuthCode.user_id == account_id,
            OAuthCode.client_id == client_id,
            OAuthCode.consumed_at.is_(None),
            OAuthCode.expires_at > now,
        )
        .values(consumed_at=now)
    )
    consent = s.execute(
        delete(OAuthConsent).where(
            OAuthConsent.user_id == account_id, OAuthConsent.client_id == client_id
        )
    )
    return rowcount(tokens) + rowcount(codes) + rowcount(consent) > 0
