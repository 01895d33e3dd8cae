"""A bounded pool of PostgreSQL connections for processes that serve many requests (the API's
reads). Sinks hold a single connection of their own (``store.py``).

Connections come from the same settings as every other PostgreSQL client (``dsn()``: TLS mode,
root certificate, timeouts), so a managed server that requires TLS is reached the same way by
the API, the sinks and the migrations.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

from polystream.settings import PostgresSettings

Pool = ConnectionPool[Any]


def open_pool(settings: PostgresSettings, *, application_name: str = "polystream-api",
              min_size: int = 1, wait: bool = False) -> Pool:
    """A pool of at most ``settings.pool_size`` connections (autocommit, UTC). With ``wait`` it
    returns once ``min_size`` connections are open, raising if they cannot be."""
    pool: Pool = ConnectionPool(
        settings.dsn(),
        min_size=min(min_size, settings.pool_size),
        max_size=settings.pool_size,
        kwargs={"autocommit": True, "application_name": application_name,
                "options": "-c TimeZone=UTC"},
        timeout=settings.connect_timeout_s,
        name=application_name,
        open=True,
    )
    if wait:
        try:
            pool.wait(timeout=settings.connect_timeout_s)
        except BaseException:
            pool.close()
            raise
    return pool
