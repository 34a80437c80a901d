"""reset_codes: the keyed digest of the mailed link's secret

Revision ID: 0010_reset_link_digest
Revises: 0009_reset_request_dead_letter
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_reset_link_digest"
down_revision = "0009_reset_request_dead_letter"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: codes issued before this revision (at most 10 minutes old) have no link.
    with op.batch_alter_table("reset_codes") as batch:
        batch.add_column(sa.Column("link_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reset_codes") as batch:
        batch.drop_column("link_digest")
