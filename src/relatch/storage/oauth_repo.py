"""The rows behind the OAuth2 provider (codes and tokens): one short transaction each.

Single-use secrets (STYLE rule 6): a code is consumed, and a refresh token rotated, by
one conditional UPDATE whose row count must be 1, in the same transaction that stores
the new token; a replay or a race finds the row already spent and issues nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from relatch.core import keyed
from relatch.core import oauth_digests as digests
from relatch.storage import oauth_code_replay as code_replay
from relatch.storage.accounts import AccountRef
from relatch.storage.context import StoreContext
from relatch.storage.db import delete_in_batches, rowcount, transaction
from relatch.storage.models import User
from relatch.storage.models_oauth import OAuthCode, OAuthToken
from relatch.storage.oauth_clients import (
    NewClient,
    create_client,
    has_consent,
    load_client,
    remember_consent,
)
from relatch.storage.oauth_records import AuthorizationCode, Client, Token
from relatch.storage.one_time import OAUTH_CODES

# The OAuth repository, one import for its callers: clients and consent live in
# storage/oauth_clients.py, codes and tokens here.
__all__ = [
    "ACCESS_MARK",
    "ACCESS_TTL",
    "CODE_TTL",
    "REFRESH_MARK",
    "REFRESH_TTL",
    "NewClient",
    "SpentSecret",
    "create_client",
    "find_code",
    "find_token",
    "has_consent",
    "load_client",
    "nonce_used",
    "prune_tokens",
    "remember_consent",
    "revoke",
    "revoke_for_user",
    "revoke_grant",
    "save_code",
    "save_token",
    "user_by_id",
    "was_rotated",
]

CODE_TTL = timedelta(minutes=2)  # RFC 6749 4.1.2: short-lived; a maximum of 10 minutes
ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=30)
ACCESS_MARK = "rlat_"
REFRESH_MARK = "rlrt_"


class SpentSecret(Exception):
    """The code or refresh token was already used (replay) or raced by another request."""


# Authorization codes -----------------------------------------------------------------


def save_code(
    svc: StoreContext, code: str, client: Client, user: AccountRef, **fields: object
) -> None:
    now = svc.clock()
    with transaction(svc.sessions) as s:
        s.add(
            OAuthCode(
                digest=keyed.digest(svc.keys, keyed.OAUTH_CODE, code),
                client_id=client.client_id,
                user_id=user.id,
                generation=user.credential_generation,
                created_at=now,
                expires_at=now + CODE_TTL,
                **fields,
            )
        )


def find_code(svc: StoreContext, code: str, client: Client) -> AuthorizationCode | None:
    """A live code issued to this client (RFC 6749 4.1.3: bound to the client)."""
    wanted = digests.candidates(svc.keys, keyed.OAUTH_CODE, code)
    if not wanted:
        return None
    with svc.sessions() as s:
        row = s.scalars(
            select(OAuthCode).where(
                OAuthCode.digest.in_(wanted),
                OAuthCode.client_id == client.client_id,
                OAUTH_CODES.live(svc.clock()),
            )
        ).first()
    if row is None:
        return None
    return AuthorizationCode(
        id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        generation=row.generation,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        auth_time=row.auth_time,
    )


def nonce_used(svc: StoreContext, client_id: str, nonce: str) -> bool:
    with svc.sessions() as s:
        found = s.scalar(
            select(OAuthCode.id).where(OAuthCode.client_id == client_id, OAuthCode.nonce == nonce)
        )
    return found is not None


def user_by_id(svc: StoreContext, user_id: int) -> User | None:
    with svc.sessions() as s:
        return s.get(User, user_id)


# Tokens ------------------------------------------------------------------------------


def save_token(
    svc: StoreContext,
    token: dict[str, object],
    client: Client,
    user: AccountRef | None,
    grant_type: str,
    *,
    consume_code: int | None = None,
    rotate_from: int | None = None,
) -> None:
    """Store a new token's digests; in the same transaction spend the code or the old
    refresh token it came from (SpentSecret if that was already spent)."""
    now = svc.clock()
    raced = False
    with transaction(svc.sessions) as s:
        code_id = consume_code
        if consume_code is not None and not OAUTH_CODES.consume(s, consume_code, now):
            # Code replay that raced the first redemption (RFC 6749 4.1.2): the
            # winner's tokens are revoked, committed with this transaction.
            code_replay.revoke_family(s, consume_code, now)
            raced = True
        if rotate_from is not None:
            # Refresh rotation (RFC 9700 4.14.2): the old refresh and access token die now.
            spent = rowcount(
                s.execute(
                    update(OAuthToken)
                    .where(OAuthToken.id == rotate_from, OAuthToken.revoked_at.is_(None))
                    .values(revoked_at=now, rotated=True)
                )
            )
            if spent != 1:
                raise SpentSecret()
            # The new row stays in the code's family: a later replay of the code reaches it.
            code_id = s.scalar(select(OAuthToken.code_id).where(OAuthToken.id == rotate_from))
        if not raced:
            s.add(_token_row(svc, token, client, user, grant_type, now, code_id))
    if raced:
        raise SpentSecret()


def _token_row(
    svc: StoreContext,
    token: dict[str, object],
    client: Client,
    user: AccountRef | None,
    grant_type: str,
    now: datetime,
    code_id: int | None,
) -> OAuthToken:
    access = str(token["access_token"])
    refresh = token.get("refresh_token")
    return OAuthToken(
        access_digest=keyed.digest(svc.keys, keyed.OAUTH_ACCESS, access),
        refresh_digest=(
            keyed.digest(svc.keys, keyed.OAUTH_REFRESH, str(refresh)) if refresh else None
        ),
        client_id=client.client_id,
        user_id=user.id if user else None,
        generation=user.credential_generation if user else None,
        grant_type=grant_type,
        scope=str(token.get("scope") or ""),
        issued_at=now,
        access_expires_at=now + timedelta(seconds=int(str(token["expires_in"]))),
        refresh_expires_at=now + REFRESH_TTL if refresh else None,
        code_id=code_id,
    )


def _find(svc: StoreContext, kind: str, value: str) -> tuple[OAuthToken, User | None] | None:
    purpose = keyed.OAUTH_ACCESS if kind == "access_token" else keyed.OAUTH_REFRESH
    wanted = digests.candidates(svc.keys, purpose, value)
    if not wanted:
        return None
    column = OAuthToken.access_digest if kind == "access_token" else OAuthToken.refresh_digest
    with svc.sessions() as s:
        row = s.scalars(select(OAuthToken).where(column.in_(wanted))).first()
        if row is None:
            return None
        user = s.get(User, row.user_id) if row.user_id is not None else None
    return row, user


def find_token(svc: StoreContext, value: str, hint: str | None = None) -> Token | None:
    """The token with this value, access or refresh (the hint only orders the lookups)."""
    kinds = (
        ["refresh_token", "access_token"]
        if hint == "refresh_token"
        else [
            "access_token",
            "refresh_token",
        ]
    )
    for kind in kinds:
        found = _find(svc, kind, value)
        if found is None:
            continue
        row, user = found
        client = load_client(svc, row.client_id)
        if client is None:
            return None
        return Token(
            id=row.id,
            kind=kind,
            client=client,
            user=user,
            generation=row.generation,
            grant_type=row.grant_type,
            scope=row.scope,
            issued_at=row.issued_at,
            expires_at=row.access_expires_at if kind == "access_token" else row.refresh_expires_at,
            revoked_at=row.revoked_at,
            now=svc.clock(),
        )
    return None


def was_rotated(svc: StoreContext, token_id: int) -> bool:
    with svc.sessions() as s:
        return bool(s.scalar(select(OAuthToken.rotated).where(OAuthToken.id == token_id)))


def revoke(svc: StoreContext, token_id: int) -> None:
    with transaction(svc.sessions) as s:
        s.execute(
            update(OAuthToken)
            .where(OAuthToken.id == token_id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=svc.clock())
        )


def revoke_grant(svc: StoreContext, user_id: int, client_id: str) -> None:
    """Every live token of this account at this client (a replayed refresh token)."""
    with transaction(svc.sessions) as s:
        s.execute(
            update(OAuthToken)
            .where(
                OAuthToken.user_id == user_id,
                OAuthToken.client_id == client_id,
                OAuthToken.revoked_at.is_(None),
            )
            .values(revoked_at=svc.clock())
        )


_REVOKE_USERS_TOKENS = (
    update(OAuthToken)
    .where(OAuthToken.user_id == bindparam("b_user_id"), OAuthToken.revoked_at.is_(None))
    .values(revoked_at=bindparam("b_now"))
)  # built once: every reset runs it (issue 12)


def revoke_for_user(s: Session, user: User, now: datetime) -> None:
    """`on_password_changed` hook, inside the reset's transaction: every access and refresh
    token and every unused code of the account dies with the old password."""
    s.execute(_REVOKE_USERS_TOKENS, {"b_user_id": user.id, "b_now": now})
    OAUTH_CODES.revoke_live(s, user.id, now)


def prune_tokens(sessions: sessionmaker[Session], cutoff: datetime) -> int:
    """Delete the tokens whose access AND refresh token both expired before `cutoff`
    (retention, by the workers), in bounded batches; how many. Revoked and rotated rows
    stay until then: a replay of a rotated refresh token is a theft signal while that
    token could still have been valid."""
    dead = (OAuthToken.access_expires_at < cutoff) & (
        OAuthToken.refresh_expires_at.is_(None) | (OAuthToken.refresh_expires_at < cutoff)
    )
    return delete_in_batches(sessions, OAuthToken, dead)
