"""code_try_decoys: the row a wrong reset code writes when no live code counts it (issue 12)

Revision ID: 0016_code_try_decoys
Revises: 0015_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_code_try_decoys"
down_revision = "0015_sessions"
branch_labels = None
depends_on = None

SLOTS = 256  # storage/models_decoys.DECOY_SLOTS, as of this revision


def upgrade() -> None:
    table = op.create_table(
        "code_try_decoys",
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.bulk_insert(table, [{"slot": n, "attempts": 0} for n in range(SLOTS)])


def downgrade() -> None:
    op.drop_table("code_try_decoys")
