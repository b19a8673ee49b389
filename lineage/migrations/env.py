"""Alembic environment: migrations run on a connection handed in by lineage.db."""

from alembic import context

import lineage.tags  # noqa: F401 - registers column_tags on Base.metadata
from lineage.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` CLI use: build an engine from the ini URL
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
