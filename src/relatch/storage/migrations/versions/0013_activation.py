"""Activation codes (issue 11: an account's address is proven before it makes credentials)

Revision ID: 0013_activation
Revises: 0012_outbox_claim

Existing accounts keep working (sessions, API keys, TOTP, OAuth grants untouched), and
none is marked proven that never was: `users.email_verified` has been set by every
successful reset since 0001 (storage/accounts.set_password), and by nothing else, so it
already says which addresses were ever proven. It is the `activated` flag from now on and
is left as it is: an account that never reset stays `activated: false` (the OIDC
`email_verified` claim stays truthful for the apps that link accounts on it) and can ask
for an activation code (`requestActivationCodeCurrentUser`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relatch.storage.types import UTCDateTime

revision = "0013_activation"
down_revision = "0012_outbox_claim"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "activation_codes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_activation_codes_user_live",
        "activation_codes",
        ["user_id", "consumed_at", "revoked_at"],
    )
    op.create_index("ix_activation_codes_expires", "activation_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_activation_codes_expires", table_name="activation_codes")
    op.drop_index("ix_activation_codes_user_live", table_name="activation_codes")
    op.drop_table("activation_codes")
