"""The account's life (issue 11): profile fields, staff, suspension; ids never reused

Revision ID: 0014_lifecycle
Revises: 0013_activation

New columns of `users`, all with a value that leaves existing accounts as they were: no
time zone, the default sort order, not staff, not suspended. Sessions, API keys, TOTP
factors and OAuth grants are untouched.

Account ids are never handed out twice (an account can now be deleted): a session JWT
names its account by id and generation, and the audit trail keeps the ids of deleted
accounts, so an id used again would sign a deleted account's old sessions in as the new
account and show its history as the new one's. PostgreSQL's sequences never go back;
SQLite reuses the largest rowid once its row is deleted unless the table is declared
AUTOINCREMENT, which only a rebuild can add: on SQLite `users` is rebuilt (rows and ids
copied). The rebuild needs foreign keys off (a DROP TABLE with them on would cascade to
every credential), which `storage/migrate.upgrade` arranges around every migration run;
this revision refuses to run with them on rather than lose the children.

`audit_events.subject_id`: the account a staff member or operator acted on (the actor
stays in `account_id`).

Downgrade drops the columns; the AUTOINCREMENT declaration stays (harmless, and removing
it would need the same rebuild).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_lifecycle"
down_revision = "0013_activation"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
USER_COLUMNS = ("timezone", "projects_sort_order", "is_staff", "suspended_at", "suspension_reason")


def _new_user_columns() -> list[sa.Column[object]]:
    from relatch.storage.types import UTCDateTime

    return [
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("projects_sort_order", sa.String(32), nullable=True),
        sa.Column("is_staff", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("suspended_at", UTCDateTime(), nullable=True),
        sa.Column("suspension_reason", sa.String(256), nullable=True),
    ]


def _sqlite_autoincrement(bind: sa.Connection) -> bool:
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'"
    ).scalar()
    return "AUTOINCREMENT" in str(sql or "").upper()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise RuntimeError(
                "0014_lifecycle rebuilds the users table: run it through `relatch migrate` "
                "(foreign keys must be off, or the rebuild would delete every credential)"
            )
        rebuild = not _sqlite_autoincrement(bind)
        with op.batch_alter_table(
            "users",
            recreate="always" if rebuild else "auto",
            table_kwargs={"sqlite_autoincrement": True},
        ) as batch:
            for column in _new_user_columns():
                batch.add_column(column)
    else:
        for column in _new_user_columns():
            op.add_column("users", column)
    op.add_column("audit_events", sa.Column("subject_id", ID, nullable=True))
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no rebuild, so no cascade.
    op.execute("ALTER TABLE audit_events DROP COLUMN subject_id")
    for name in USER_COLUMNS:
        op.execute(f"ALTER TABLE users DROP COLUMN {name}")
