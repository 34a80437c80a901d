"""Link each OAuth token row to the authorization code it came from (replay revocation)

Revision ID: 0006_oauth_code_tokens
Revises: 0005_oauth

RFC 6749 4.1.2: when a code is used twice, the tokens already issued from it SHOULD be
revoked; `oauth_tokens.code_id` names them (rotated refresh tokens inherit it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_oauth_code_tokens"
down_revision = "0005_oauth"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FK = "fk_oauth_tokens_code"
INDEX = "ix_oauth_tokens_code"


def upgrade() -> None:
    # Batch mode: SQLite cannot ALTER in a foreign key; it copies the table instead.
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.add_column(sa.Column("code_id", ID, nullable=True))
        batch.create_foreign_key(FK, "oauth_codes", ["code_id"], ["id"], ondelete="SET NULL")
        batch.create_index(INDEX, ["code_id"])


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.drop_index(INDEX)
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("code_id")
