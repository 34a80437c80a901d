"""security schemes: API keys, OAuth2/OIDC, TOTP (issue 4)

Revision ID: 0003_auth
Revises: 0002_abuse
"""

from __future__ import annotations

revision = "0003_auth"
down_revision = "0002_abuse"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
