"""owner_notices: when the last "someone is guessing" mail went to an account (issue 14)

Revision ID: 0017_owner_notices
Revises: 0016_code_try_decoys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0017_owner_notices"
down_revision = "0016_code_try_decoys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("guessing_notice_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN guessing_notice_at")
