"""mfa_reset: an operator's delayed TOTP removal, and the low-recovery-codes notice (issue 14)

Revision ID: 0017_mfa_reset
Revises: 0016_code_try_decoys

`mfa_resets`: one row per `relatch user mfa-reset` (services/mfa_reset.py), pending until
its wait ends, the owner objects or the operator cancels; durable, so a restart neither
loses a pending removal nor shortens its wait. `totp_factors.codes_warned_at`: when the
"2 or fewer recovery codes left" notice went out for the current codes (once per set).

A plain ADD COLUMN (nullable): no rebuild of `totp_factors` on SQLite. Downgrade drops both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_mfa_reset"
down_revision = "0016_code_try_decoys"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    from relatch.storage.types import UTCDateTime

    op.create_table(
        "mfa_resets",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("factor_enabled_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
    )
    op.create_index("ix_mfa_resets_user", "mfa_resets", ["user_id", "ended_at"])
    op.create_index("ix_mfa_resets_due", "mfa_resets", ["ended_at", "due_at"])
    op.add_column("totp_factors", sa.Column("codes_warned_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE totp_factors DROP COLUMN codes_warned_at")
    op.drop_index("ix_mfa_resets_due", table_name="mfa_resets")
    op.drop_index("ix_mfa_resets_user", table_name="mfa_resets")
    op.drop_table("mfa_resets")
