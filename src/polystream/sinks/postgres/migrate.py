"""Schema migrations at worker start, without an ``alembic.ini``.

The migrations ship inside the package (``migrations/``), so an installed worker can bring an
empty database to the current schema: ``upgrade(settings)``. ``check(settings)`` says whether
the database is already there (for a worker started with migrations disabled, or ``verify``).

From a shell, with the workers' settings (``POLYSTREAM_POSTGRES__*``)::

    python -m polystream.sinks.postgres upgrade|current|check|sql
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from sqlalchemy.pool import NullPool

from polystream.runtime.retry import ConfigurationError
from polystream.settings import PostgresSettings, load_settings
from polystream.store_errors import TransientStoreError

_UPGRADE_LOCK: Final = threading.Lock()

# Refusals that waiting cannot fix. libpq reports them as text only (no SQLSTATE when the
# connection itself is refused): a wrong password or user, no such database, no hba entry,
# a server that requires TLS (sslmode too weak) or a certificate the configured CA rejects.
_NOT_RETRYABLE: Final = re.compile(
    r"password authentication failed|role \"[^\"]*\" does not exist|"
    r"database \"[^\"]*\" does not exist|no pg_hba\.conf entry|pg_hba\.conf rejects|"
    r"certificate verify failed")

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
# Its own name, so it cannot collide with another Alembic tree sharing the database one day.
VERSION_TABLE: Final = "alembic_version_accounts"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connect(settings: PostgresSettings) -> Iterator[Connection]:
    # NullPool: a migration is a one-off at start-up; nothing should stay open afterwards.
    engine = create_engine(settings.sqlalchemy_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyOperationalError as exc:
        if _NOT_RETRYABLE.search(str(exc.orig)):
            raise ConfigurationError(f"PostgreSQL refused the connection: {exc.orig}") from exc
        raise TransientStoreError(f"cannot reach PostgreSQL to migrate: {exc.orig}") from exc
    finally:
        engine.dispose()


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {heads}")
    return heads[0]


def current_revision(settings: PostgresSettings) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with _connect(settings) as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(settings: PostgresSettings, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe to run from several workers at once.

    Across processes an advisory lock (in ``env.py``) serialises the upgrades; within one
    process this lock does, because Alembic keeps its running context in module globals.
    """
    with _UPGRADE_LOCK, _connect(settings) as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def check(settings: PostgresSettings) -> bool:
    """True when the database is at the head revision of the packaged migrations."""
    return current_revision(settings) == head_revision()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else "check"
    settings = load_settings().postgres
    if action == "upgrade":
        upgrade(settings)
        print(f"at {current_revision(settings)}")
    elif action == "current":
        print(current_revision(settings))
    elif action == "check":
        ok = check(settings)
        print(
            "up to date"
            if ok
            else f"behind: at {current_revision(settings)}, head {head_revision()}"
        )
        return 0 if ok else 1
    elif action == "sql":
        command.upgrade(alembic_config(), "head", sql=True)
    else:
        print("usage: python -m polystream.sinks.postgres upgrade|current|check|sql")
        return 2
    return 0
