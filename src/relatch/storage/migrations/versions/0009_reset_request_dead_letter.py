"""reset_requests: tries, backoff and a dead-letter state for requests that keep failing

Revision ID: 0009_reset_request_dead_letter
Revises: 0008_known_clients
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0009_reset_request_dead_letter"
down_revision = "0008_known_clients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reset_requests") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("failed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(256), nullable=True))
        batch.create_index("ix_reset_requests_due", ["failed_at", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("reset_requests") as batch:
        batch.drop_index("ix_reset_requests_due")
        batch.drop_column("last_error")
        batch.drop_column("failed_at")
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
