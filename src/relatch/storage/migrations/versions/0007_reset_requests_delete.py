"""reset_requests: drop processed_at (the worker now claims a request by deleting it)

Revision ID: 0007_reset_requests_delete
Revises: 0006_oauth_code_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0007_reset_requests_delete"
down_revision = "0006_oauth_code_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows still pending were never decided: keep them (the worker takes them next);
    # rows already processed under the old scheme only kept typed addresses: drop them.
    op.execute(sa.text("DELETE FROM reset_requests WHERE processed_at IS NOT NULL"))
    with op.batch_alter_table("reset_requests") as batch:
        batch.drop_index("ix_reset_requests_pending")
        batch.drop_column("processed_at")


def downgrade() -> None:
    with op.batch_alter_table("reset_requests") as batch:
        batch.add_column(sa.Column("processed_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_reset_requests_pending", ["processed_at", "id"])
