"""Where the per-user data keys live: PostgreSQL (``data_keys``), or memory for unit tests.

A row is created by the first producer that seals a field of the user, and loses its key for
good on erasure: the row stays, key NULL and ``erased_at`` set, so that a producer that
publishes for the user afterwards (a late command) never gets a fresh key that would make
new personal data readable again; it seals under no key at all (see ``KeyCache.for_sealing``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any, Protocol

import psycopg

from polystream.settings import PostgresSettings
from polystream.shred.fields import new_key


class KeyStoreError(RuntimeError):
    """The key store did not answer (the caller retries or rewinds; nothing is assumed)."""


class KeyStore(Protocol):
    def issue(self, users: Collection[str]) -> dict[str, bytes | None]:
        """Each user's key, created for those that have none; None for an erased user."""
        ...

    def fetch(self, users: Collection[str]) -> dict[str, bytes | None]:
        """Each user's key; None for an erased user. A user who never had a key is left
        out: their sealed fields come from producers writing to another key database."""
        ...

    def erase(self, users: Collection[str]) -> None:
        """Destroy the users' keys (idempotent); they can never be issued again."""
        ...

    def close(self) -> None: ...


class MemoryKeyStore:
    """In-process keys, for embedded mode and unit tests."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.round_trips = 0
        self._lock = threading.Lock()

    def issue(self, users: Collection[str]) -> dict[str, bytes | None]:
        with self._lock:
            self.round_trips += 1
            return {u: self.keys.setdefault(u, new_key()) for u in users}

    def fetch(self, users: Collection[str]) -> dict[str, bytes | None]:
        with self._lock:
            self.round_trips += 1
            return {u: self.keys[u] for u in users if u in self.keys}

    def erase(self, users: Collection[str]) -> None:
        with self._lock:
            self.round_trips += 1
            self.keys.update(dict.fromkeys(users))

    def close(self) -> None:
        return None


_ISSUE = """
INSERT INTO data_keys (user_id, data_key)
SELECT * FROM unnest(%s::varchar[], %s::bytea[])
ON CONFLICT (user_id) DO NOTHING
"""
_FETCH = "SELECT user_id, data_key FROM data_keys WHERE user_id = ANY(%s::varchar[])"
_ERASE = """
INSERT INTO data_keys (user_id, data_key, erased_at)
SELECT u, NULL, now() FROM unnest(%s::varchar[]) AS u
ON CONFLICT (user_id) DO UPDATE
SET data_key = NULL, erased_at = coalesce(data_keys.erased_at, excluded.erased_at)
"""


class PostgresKeyStore:
    """Keys in the ``data_keys`` table (migration 0003), one statement per batch of users.

    One connection, opened on first use and again after a failure; safe to share between
    threads (a lock: calls are short and, thanks to the caches in front, rare). ``prepare``
    (the schema migration of a separate key database) runs before the first connection, so
    a process that never meets a personal field never touches the database."""

    def __init__(self, settings: PostgresSettings, *, application_name: str,
                 prepare: Callable[[], None] | None = None) -> None:
        self._settings = settings
        self._application_name = application_name
        self._prepare = prepare
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @property
    def database(self) -> str:
        return self._settings.database

    def _run(self, sql: str, params: tuple[Any, ...], *, rows: bool) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._prepare is not None:
                    try:
                        self._prepare()
                    except Exception as exc:  # the migration's own errors (SQLAlchemy's)
                        raise KeyStoreError(f"data keys: database {self.database!r} not "
                                            f"migrated: {type(exc).__name__}: {exc}") from exc
                    self._prepare = None
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self._settings.dsn(), autocommit=True,
                        application_name=self._application_name)
                with self._conn.cursor() as cur:
                    cur.execute(sql, params)
                    return list(cur.fetchall()) if rows else []
            except psycopg.Error as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise KeyStoreError(f"data keys: {type(exc).__name__}: {exc}") from exc

    def issue(self, users: Collection[str]) -> dict[str, bytes | None]:
        wanted = sorted(set(users))
        self._run(_ISSUE, (wanted, [new_key() for _ in wanted]), rows=False)
        return self.fetch(wanted)

    def fetch(self, users: Collection[str]) -> dict[str, bytes | None]:
        wanted = sorted(set(users))
        return {str(u): (bytes(k) if k is not None else None)
                for u, k in self._run(_FETCH, (wanted,), rows=True)}

    def erase(self, users: Collection[str]) -> None:
        if users:
            self._run(_ERASE, (sorted(set(users)),), rows=False)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["KeyStore", "KeyStoreError", "MemoryKeyStore", "PostgresKeyStore"]
