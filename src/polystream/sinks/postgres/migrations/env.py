"""Alembic environment, driven from code (:mod:`polystream.sinks.postgres.migrate`).

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``; there
is no ``alembic.ini`` and no URL here, so credentials only ever come from the settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from polystream.sinks.postgres.migrate import VERSION_TABLE
from polystream.sinks.postgres.schema import metadata

#: Serialises concurrent upgrades (several workers starting together): any fixed 64-bit
#: number works as long as nothing else in the database uses it.
MIGRATION_LOCK_ID = 0x706F6C7973747265  # "polystre"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through polystream.sinks.postgres.migrate, which passes a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # PostgreSQL DDL is transactional: a failed upgrade leaves the schema as it was.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        # Taken inside the migration transaction and released with it, so the second worker
        # waits, then finds the schema at head and has nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url="postgresql+psycopg://",
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
