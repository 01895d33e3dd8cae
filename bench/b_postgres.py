"""3. PostgreSQL sink: ``PostgresAccountStore.apply`` against one set-based INSERT per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from bench import data
from bench.core import Sample, Stopwatch, Variant, batches
from bench.pipeline.isolation import create_database, drop_database
from polystream.domain.events import Envelope
from polystream.settings import PostgresSettings, Settings
from polystream.sinks.postgres import PostgresAccountStore, upgrade

BATCH: Final = 500
TABLES: Final = ("users", "subscriptions", "payments", "preferences", "ratings", "processed_events")

CREATE_PLAIN: Final = """
CREATE TABLE events (
    event_id    uuid PRIMARY KEY,
    event_type  text NOT NULL,
    key         text NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload     jsonb NOT NULL
)
"""
COPY_PLAIN: Final = "COPY events (event_id, event_type, key, occurred_at, payload) FROM STDIN"
_INSERT_PLAIN: Final = """
INSERT INTO events (event_id, event_type, key, occurred_at, payload)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[])
"""

Columns = tuple[list[UUID], list[str], list[str], list[datetime], list[str]]


class PostgresBench:
    name = "postgres"
    title = "PostgreSQL sink (accounts)"
    unit = "events/s"

    def __init__(self, settings: Settings, run_id: str, quick: bool) -> None:
        self.admin = settings.postgres
        self.prefix = f"bench_{run_id}"
        self.count = 3_000 if quick else 20_000
        self.events: list[Envelope[Any]] = []
        self.columns: list[Columns] = []
        self.databases: list[str] = []

    def describe(self) -> str:
        return (
            "The PostgreSQL sink's share of a simulated sign-up wave (registrations, "
            "preferences, subscriptions, payments, ratings, in stream order) applied in "
            f"batches of {BATCH} by PostgresAccountStore.apply: per batch one transaction that "
            "locks and loads every row the batch touches, decides each event with the shared "
            "rules, upserts the changed rows (one unnest statement per table) and writes the "
            "processed-events ledger. Baseline: the same events, one row each, into a plain "
            "table (uuid primary key, type, key, time, jsonb payload) with one COPY per batch "
            f"of {BATCH}, one transaction per batch. Reference: the same rows with one "
            "INSERT ... SELECT FROM unnest(%s::uuid[], ...) per batch, the arrays adapted from "
            "Python lists by psycopg. Each repetition gets a fresh database (migrated by "
            "polystream.sinks.postgres.migrate.upgrade, untimed)."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count, "batch": BATCH}

    def setup(self) -> None:
        self.events = data.account_events(self.count)
        self.columns = [
            (
                [e.event_id for e in batch],
                [e.type for e in batch],
                [e.key for e in batch],
                [e.occurred_at for e in batch],
                [e.payload.model_dump_json() for e in batch],
            )
            for batch in batches(self.events, BATCH)
        ]

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, f"PostgresAccountStore.apply, {BATCH}/batch"),
            Variant("baseline", "baseline", self._copy, f"COPY, {BATCH} rows/transaction"),
            Variant(
                "unnest",
                "reference",
                self._unnest,
                f"INSERT ... SELECT FROM unnest(lists), {BATCH} rows/transaction",
            ),
        ]

    # -- databases ---------------------------------------------------------------------------

    def _fresh(self, label: str) -> PostgresSettings:
        name = f"{self.prefix}_{label}"
        create_database(self.admin, name)
        self.databases.append(name)
        return self.admin.model_copy(update={"database": name})

    def _drop(self, name: str) -> None:
        drop_database(self.admin, name)
        self.databases.remove(name)

    # -- variants ----------------------------------------------------------------------------

    def _ours(self, rep: int) -> Sample:
        pg = self._fresh(f"ours_{rep}")
        upgrade(pg)
        store = PostgresAccountStore(pg)
        try:
            store.get_user("warm-up")  # connect before the clock
            outcomes: Counter[str] = Counter()
            with Stopwatch() as watch:
                for batch in batches(self.events, BATCH):
                    for outcome in store.apply(batch):
                        outcomes[outcome.status.value] += 1
            rows = _count_rows(pg)
        finally:
            store.close()
            self._drop(pg.database)
        problems = (
            []
            if outcomes["stored"] == len(self.events)
            else [f"outcomes {dict(outcomes)} (expected all stored)"]
        )
        return Sample.of(
            len(self.events),
            watch,
            problems,
            outcomes=dict(outcomes),
            rows=rows,
            rows_written=sum(rows.values()),
        )

    def _copy(self, rep: int) -> Sample:
        return self._plain(f"copy_{rep}", copy=True)

    def _unnest(self, rep: int) -> Sample:
        return self._plain(f"unnest_{rep}", copy=False)

    def _plain(self, label: str, *, copy: bool) -> Sample:
        pg = self._fresh(label)
        try:
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute(CREATE_PLAIN)
                cursor = conn.cursor()
                with Stopwatch() as watch:
                    for columns in self.columns:
                        with conn.transaction():
                            if copy:
                                with cursor.copy(COPY_PLAIN) as out:
                                    for values in zip(*columns, strict=True):
                                        out.write_row(values)
                            else:
                                cursor.execute(_INSERT_PLAIN, columns)
                counted = conn.execute("SELECT count(*) FROM events").fetchone()
                stored = int(counted[0]) if counted else 0
        finally:
            self._drop(pg.database)
        problems = (
            [] if stored == len(self.events) else [f"{stored} rows stored of {len(self.events)}"]
        )
        return Sample.of(len(self.events), watch, problems, rows_written=stored)

    def teardown(self) -> None:
        for name in list(self.databases):
            self._drop(name)
        self.events, self.columns = [], []


def _count_rows(pg: PostgresSettings, tables: Sequence[str] = TABLES) -> dict[str, int]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        counts: dict[str, int] = {}
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts
