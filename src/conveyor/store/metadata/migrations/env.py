"""Alembic environment: migrations run on the connection conveyor hands over (or a URL for dev)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from conveyor.store.metadata.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line, for writing new migrations
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
