from __future__ import annotations

import psycopg
import pytest

from polystream.settings import Settings

pytestmark = pytest.mark.stack


def test_table_insert_select_and_unique_violation(settings: Settings, unique: str) -> None:
    table = f"smoke_{unique}"
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, email text UNIQUE NOT NULL)")
        try:
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                                [(i, f"u{i}@example.org") for i in range(100)])
            rows = conn.execute(f"SELECT id, email FROM {table} WHERE id >= 98 ORDER BY id")
            assert rows.fetchall() == [(98, "u98@example.org"), (99, "u99@example.org")]
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count == (100,)
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(f"INSERT INTO {table} VALUES (1000, 'u1@example.org')")
        finally:
            conn.execute(f"DROP TABLE {table}")
