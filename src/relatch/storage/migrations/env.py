"""Alembic environment: always handed a live connection by relatch.storage.migrate."""

from __future__ import annotations

from alembic import context

from relatch.storage import all_models

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `relatch migrate`")

context.configure(
    connection=connection,
    target_metadata=all_models.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
