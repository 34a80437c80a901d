"""Sign-in sessions (issue 14): the record each session JWT names by its `sid` claim

Revision ID: 0015_sessions
Revises: 0014_lifecycle

`sessions`: one row per sign-in (services/sign_in_sessions.py). `users.sessionless_ended`:
JWTs issued before this revision carry no `sid`; they keep working until they expire
(RELATCH_JWT_TTL after their sign-in) or the generation bumps, unless the owner signs
one of them out or ends the others, which sets this flag and refuses them all.

A plain ADD COLUMN with a default: no rebuild of `users` on SQLite. Downgrade drops both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_sessions"
down_revision = "0014_lifecycle"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    from relatch.storage.types import UTCDateTime

    op.create_table(
        "sessions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("network", sa.String(64), nullable=True),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id", "expires_at"])
    op.create_index("ix_sessions_expires", "sessions", ["expires_at"])
    op.add_column(
        "users",
        sa.Column("sessionless_ended", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN sessionless_ended")
    op.drop_index("ix_sessions_expires", table_name="sessions")
    op.drop_index("ix_sessions_user", table_name="sessions")
    op.drop_table("sessions")
