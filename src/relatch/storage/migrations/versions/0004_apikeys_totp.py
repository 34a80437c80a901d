"""API keys and TOTP second factor (issue 4)

Revision ID: 0004_apikeys_totp
Revises: 0003_audit
"""

from __future__ import annotations

revision = "0004_apikeys_totp"
down_revision = "0003_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
