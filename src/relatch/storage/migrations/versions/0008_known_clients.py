"""known_clients: devices and networks with their own failure budget; reset_codes counts
the tries of known clients apart (issue 8, lockout)

Revision ID: 0008_known_clients
Revises: 0007_reset_requests_delete
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0008_known_clients"
down_revision = "0007_reset_requests_delete"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "known_clients",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "digest", name="uq_known_clients_user_digest"),
    )
    op.create_index("ix_known_clients_digest", "known_clients", ["digest", "expires_at"])
    with op.batch_alter_table("reset_codes") as batch:
        batch.add_column(
            sa.Column("known_attempts", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("reset_codes") as batch:
        batch.drop_column("known_attempts")
    op.drop_index("ix_known_clients_digest", table_name="known_clients")
    op.drop_table("known_clients")
