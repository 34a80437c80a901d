"""outbox: the claim's fencing token (issue 10, exact claim lease)

Revision ID: 0012_outbox_claim
Revises: 0011_retention_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_outbox_claim"
down_revision = "0011_retention_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows `sending` under an older version have no token: once their lease runs out they
    # are claimed again like any other, with a token.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claim_token")
