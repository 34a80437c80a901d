"""API keys and TOTP second factor (issue 4)

Revision ID: 0004_apikeys_totp
Revises: 0003_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0004_apikeys_totp"
down_revision = "0003_audit"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_user", "api_keys", ["user_id", "revoked_at"])
    op.create_table(
        "totp_factors",
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed_secret", sa.Text, nullable=True),
        sa.Column("enabled_at", UTCDateTime(), nullable=True),
        sa.Column("pending_secret", sa.Text, nullable=True),
        sa.Column("pending_created_at", UTCDateTime(), nullable=True),
        sa.Column("last_step", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "totp_recovery_codes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_totp_recovery_codes_user", "totp_recovery_codes", ["user_id", "used_at"])


def downgrade() -> None:
    op.drop_table("totp_recovery_codes")
    op.drop_table("totp_factors")
    op.drop_table("api_keys")
