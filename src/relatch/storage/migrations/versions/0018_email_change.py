"""email_change: a changed address's code and the old address's undo link (issue 14)

Revision ID: 0018_email_change
Revises: 0017_mfa_reset
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0018_email_change"
down_revision = "0017_mfa_reset"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_changes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("new_email", sa.String(320), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_email_changes_user_live", "email_changes", ["user_id", "consumed_at", "revoked_at"]
    )
    op.create_index("ix_email_changes_expires", "email_changes", ["expires_at"])
    op.create_table(
        "email_undo_links",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("old_email", sa.String(320), nullable=False),
        sa.Column("old_email_key", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_email_undo_links_user", "email_undo_links", ["user_id"])
    op.create_index("ix_email_undo_links_old_key", "email_undo_links", ["old_email_key"])
    op.create_index("ix_email_undo_links_expires", "email_undo_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_email_undo_links_expires", table_name="email_undo_links")
    op.drop_index("ix_email_undo_links_old_key", table_name="email_undo_links")
    op.drop_index("ix_email_undo_links_user", table_name="email_undo_links")
    op.drop_table("email_undo_links")
    op.drop_index("ix_email_changes_expires", table_name="email_changes")
    op.drop_index("ix_email_changes_user_live", table_name="email_changes")
    op.drop_table("email_changes")
