"""rate limits shared across processes (issue 3)

Revision ID: 0002_limits
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_limits"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limit_counters",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ends_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", "window_seconds", "window_start"),
    )
    op.create_index("ix_limit_counters_ends", "limit_counters", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_limit_counters_ends", table_name="limit_counters")
    op.drop_table("limit_counters")
