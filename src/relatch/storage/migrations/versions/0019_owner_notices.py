"""owner_notices: when the last "someone is guessing" mail went to an account (issue 14)

Revision ID: 0019_owner_notices
Revises: 0018_email_change
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0019_owner_notices"
down_revision = "0018_email_change"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("guessing_notice_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN guessing_notice_at")
