"""audit trail and not-me links (issue 3)

Revision ID: 0003_audit
Revises: 0002_limits
"""

from __future__ import annotations

revision = "0003_audit"
down_revision = "0002_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
