"""The OAuth2 clients and the consent each account gave them: one short transaction each."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from relatch.core import keyed
from relatch.storage.context import StoreContext
from relatch.storage.db import transaction
from relatch.storage.models_oauth import OAuthClient, OAuthConsent
from relatch.storage.oauth_records import Client

CLIENT_ID = re.compile("[\x20-\x7e]+")


# Clients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str | None


def create_client(
    svc: StoreContext,
    name: str,
    redirect_uris: list[str],
    grant_types: list[str],
    scopes: list[str],
    public: bool,
) -> NewClient:
    client_id = secrets.token_urlsafe(18)
    secret = None if public else secrets.token_urlsafe(32)
    with transaction(svc.sessions) as s:
        s.add(
            OAuthClient(
                client_id=client_id,
                name=name,
                secret_digest=(
                    keyed.digest(svc.keys, keyed.OAUTH_CLIENT_SECRET, secret) if secret else None
                ),
                redirect_uris=" ".join(redirect_uris),
                grant_types=" ".join(grant_types),
                scopes=" ".join(scopes),
                created_at=svc.clock(),
            )
        )
    return NewClient(client_id, secret)


def _client(svc: StoreContext, row: OAuthClient) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        secret_digest=row.secret_digest,
        redirect_uris=row.redirect_uris.split(),
        grant_types=set(row.grant_types.split()),
        scopes=row.scopes.split(),
        keys=svc.keys,
    )


def load_client(svc: StoreContext, client_id: str | None) -> Client | None:
    # A client id is VSCHAR (RFC 6749 A.1): anything else names no client, and must not
    # reach the database (PostgreSQL refuses NUL in text: a 500 on authorize and token).
    if not client_id or len(client_id) > 64 or not CLIENT_ID.fullmatch(client_id):
        return None
    with svc.sessions() as s:
        row = s.scalars(
            select(OAuthClient).where(
                OAuthClient.client_id == client_id, OAuthClient.disabled_at.is_(None)
            )
        ).first()
    return _client(svc, row) if row else None


# Consent -----------------------------------------------------------------------------


def has_consent(svc: StoreContext, user_id: int, client_id: str, scope: str) -> bool:
    with svc.sessions() as s:
        granted = s.scalar(
            select(OAuthConsent.scope).where(
                OAuthConsent.user_id == user_id, OAuthConsent.client_id == client_id
            )
        )
    if granted is None:
        return False
    return set(scope.split()) <= set(granted.split())


def remember_consent(svc: StoreContext, user_id: int, client_id: str, scope: str) -> None:
    now = svc.clock()
    for _ in range(2):  # a parallel first consent may insert the row first: retry as update
        try:
            with transaction(svc.sessions) as s:
                row = s.scalars(
                    select(OAuthConsent).where(
                        OAuthConsent.user_id == user_id, OAuthConsent.client_id == client_id
                    )
                ).first()
                if row is None:
                    s.add(
                        OAuthConsent(
                            user_id=user_id, client_id=client_id, scope=scope, granted_at=now
                        )
                    )
                else:
                    merged = sorted(set(row.scope.split()) | set(scope.split()))
                    row.scope = " ".join(merged)
                    row.granted_at = now
            return
        except IntegrityError:
            continue
