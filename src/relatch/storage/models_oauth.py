"""OAuth2 / OpenID Connect provider tables (issue 4).

Secrets (client secrets, codes, access and refresh tokens) are stored only as keyed,
purpose-salted digests (core/oauth_digests.py): a database dump hands out no usable credential.
The ID-token signing keys are kept sealed with AES-GCM under a key derived from the secret
key (core/sealing.py); only their public halves are published.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType
from relatch.storage.types import UTCDateTime


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Keyed digest of the secret; NULL for a public client (PKCE instead of a secret).
    secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Space-separated lists: exact redirect URIs, allowed grants, allowed scopes.
    redirect_uris: Mapped[str] = mapped_column(Text)
    grant_types: Mapped[str] = mapped_column(String(256))
    scopes: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OAuthCode(Base):
    """An authorization code: single use, short-lived, bound to client and redirect URI."""

    __tablename__ = "oauth_codes"
    __table_args__ = (
        # The nonce replay lookup (storage/oauth_repo.nonce_used) and the retention prune.
        Index("ix_oauth_codes_nonce", "client_id", "nonce"),
        Index("ix_oauth_codes_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The account's credential generation when the code was issued (reset kills it).
    generation: Mapped[int] = mapped_column(Integer)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(256))
    nonce: Mapped[str | None] = mapped_column(String(256), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OAuthToken(Base):
    """An access token and (optionally) its refresh token, issued together."""

    __tablename__ = "oauth_tokens"
    __table_args__ = (
        Index("ix_oauth_tokens_user", "user_id", "revoked_at"),
        Index("ix_oauth_tokens_code", "code_id"),
        # The retention prune (an access token never outlives its refresh token).
        Index("ix_oauth_tokens_access_expires", "access_expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    access_digest: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_digest: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    # NULL for client-credentials tokens: they act for the client, not for a person.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grant_type: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(256))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set on revocation (RFC 7009, password change) or rotation: access and refresh both die.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # True when the refresh token was spent by a rotation (replay of it = theft signal).
    rotated: Mapped[bool] = mapped_column(Boolean, default=False)
    # The authorization code this token came from, inherited through refresh rotations:
    # a replay of that code revokes the whole family (RFC 6749 4.1.2). NULL for others.
    code_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_codes.id", ondelete="SET NULL", name="fk_oauth_tokens_code"),
        nullable=True,
    )


class OAuthConsent(Base):
    """What an account already allowed a client (remembered consent)."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id", name="uq_oauth_consents"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(String(256))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OAuthSigningKey(Base):
    """An ID-token signing key. The newest unretired one signs; retired ones stay
    published until `published_until` so ID tokens they signed still verify."""

    __tablename__ = "oauth_signing_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    # The private JWK sealed with AES-GCM (core/sealing.py); never stored in clear.
    sealed_private: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    published_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
