"""Indexes for the retention prunes and the OAuth nonce lookup (issue 10)

Revision ID: 0011_retention_indexes
Revises: 0010_reset_link_digest
"""

from __future__ import annotations

from alembic import op

revision = "0011_retention_indexes"
down_revision = "0010_reset_link_digest"
branch_labels = None
depends_on = None

# (index, table, columns): the workers' prunes look rows up by expiry (or delivery) time;
# the OAuth nonce replay check by (client, nonce).
INDEXES = [
    ("ix_reset_codes_expires", "reset_codes", ["expires_at"]),
    ("ix_not_me_links_expires", "not_me_links", ["expires_at"]),
    ("ix_oauth_codes_expires", "oauth_codes", ["expires_at"]),
    ("ix_oauth_codes_nonce", "oauth_codes", ["client_id", "nonce"]),
    ("ix_oauth_tokens_access_expires", "oauth_tokens", ["access_expires_at"]),
    ("ix_outbox_sent", "outbox", ["status", "sent_at"]),
    ("ix_known_clients_expires", "known_clients", ["expires_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
