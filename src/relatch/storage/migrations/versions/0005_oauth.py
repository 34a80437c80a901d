"""OAuth2 clients, grants, tokens and signing keys (issue 4)

Revision ID: 0005_oauth
Revises: 0004_apikeys_totp
"""

from __future__ import annotations

revision = "0005_oauth"
down_revision = "0004_apikeys_totp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
