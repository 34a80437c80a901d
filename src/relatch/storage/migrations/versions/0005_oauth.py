"""OAuth2 clients, grants, tokens and signing keys (issue 4)

Revision ID: 0005_oauth
Revises: 0004_apikeys_totp
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0005_oauth"
down_revision = "0004_apikeys_totp"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def client_fk() -> sa.ForeignKey:
    return sa.ForeignKey("oauth_clients.client_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("grant_types", sa.String(256), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("client_id", sa.String(64), client_fk(), nullable=False),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("nonce", sa.String(256), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(16), nullable=True),
        sa.Column("auth_time", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "oauth_tokens",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("access_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("refresh_digest", sa.String(64), nullable=True, unique=True),
        sa.Column("client_id", sa.String(64), client_fk(), nullable=False),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("generation", sa.Integer, nullable=True),
        sa.Column("grant_type", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("access_expires_at", UTCDateTime(), nullable=False),
        sa.Column("refresh_expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("rotated", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_oauth_tokens_user", "oauth_tokens", ["user_id", "revoked_at"])
    op.create_table(
        "oauth_consents",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("client_id", sa.String(64), client_fk(), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "client_id", name="uq_oauth_consents"),
    )
    op.create_table(
        "oauth_signing_keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kid", sa.String(64), nullable=False, unique=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("sealed_private", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("published_until", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("oauth_signing_keys")
    op.drop_table("oauth_consents")
    op.drop_index("ix_oauth_tokens_user", table_name="oauth_tokens")
    op.drop_table("oauth_tokens")
    op.drop_table("oauth_codes")
    op.drop_table("oauth_clients")
