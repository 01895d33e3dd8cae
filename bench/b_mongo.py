"""5. MongoDB sink on FerretDB: ``MongoCatalogStore.apply`` of new titles against insert_many.

FerretDB 1.24 deadlocks (for every client) on an ``update`` command with 50 or more
statements, so nothing here sends updates: the titles are all new, which the store writes with
``insert_many`` only, and ``bulk_updates=False`` keeps it at one statement per command should a
key ever exist.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from typing import Any, Final

from pymongo import MongoClient

from bench import data
from bench.core import Sample, Stopwatch, Variant, batches
from polystream.domain.catalog import Document, title_document
from polystream.domain.events import Envelope
from polystream.settings import Settings
from polystream.sinks.mongo import INDEXES, MongoCatalogStore
from polystream.stores.catalog_layout import TITLES

BATCH: Final = 500


class MongoBench:
    name = "mongo"
    title = "MongoDB sink on FerretDB (new titles)"
    unit = "events/s"

    def __init__(self, settings: Settings, run_id: str, quick: bool) -> None:
        self.settings = settings
        self.prefix = f"bench_{run_id}"
        self.count = 500 if quick else 3_000
        self.events: list[Envelope[Any]] = []
        self.documents: list[Document] = []
        self.client: MongoClient[Document] | None = None
        self.databases: set[str] = set()

    def describe(self) -> str:
        return (
            "A catalogue load: catalog.title_upserted events of distinct new titles (the "
            "simulator's synthetic catalogue: movies and series with seasons and episodes, "
            f"~1.8 KB of JSON each) applied in batches of {BATCH} by MongoCatalogStore.apply "
            "(fold the batch in memory, insert_many(ordered=False) of the documents, no read "
            "for new keys). Baseline: insert_many(ordered=False) of the same documents "
            f"(built beforehand), {BATCH} per call, into a collection with the same indexes. "
            "FerretDB 1.24 on the stack's PostgreSQL; own database per repetition, dropped "
            "afterwards."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count, "batch": BATCH}

    def setup(self) -> None:
        self.events = data.new_titles(self.count)
        self.documents = [title_document(event) for event in self.events]
        self.client = MongoClient(
            self.settings.mongo.url,
            serverSelectionTimeoutMS=int(self.settings.mongo.server_selection_timeout_s * 1000),
            socketTimeoutMS=60_000,
            tz_aware=True,
            tzinfo=UTC,
            appname="polystream-bench",
        )
        self.client.admin.command("ping")

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, f"MongoCatalogStore.apply, {BATCH}/batch"),
            Variant(
                "baseline", "baseline", self._baseline, f"insert_many(ordered=False), {BATCH}/call"
            ),
        ]

    def _database(self, label: str) -> str:
        name = f"{self.prefix}_{label}"
        self.databases.add(name)
        return name

    def _drop(self, name: str) -> None:
        assert self.client is not None
        self.client.drop_database(name)
        self.databases.discard(name)

    def _ours(self, rep: int) -> Sample:
        assert self.client is not None
        name = self._database(f"ours_{rep}")
        store = MongoCatalogStore(self.client, name, bulk_updates=False)
        outcomes: Counter[str] = Counter()
        try:
            store.ensure_indexes()
            with Stopwatch() as watch:
                for batch in batches(self.events, BATCH):
                    for outcome in store.apply(batch):
                        outcomes[outcome.status.value] += 1
        finally:
            store.close()
            self._drop(name)
        # Not counted back: a count on FerretDB 1.24 scans every document (2 s for 5,000).
        problems = (
            []
            if outcomes["stored"] == len(self.events)
            else [f"outcomes {dict(outcomes)} (expected all stored)"]
        )
        return Sample.of(len(self.events), watch, problems, outcomes=dict(outcomes))

    def _baseline(self, rep: int) -> Sample:
        assert self.client is not None
        name = self._database(f"base_{rep}")
        collection = self.client[name][TITLES]
        try:
            for index in INDEXES[TITLES]:  # one per command, as the store does on FerretDB
                collection.create_indexes([index])
            stored = 0
            with Stopwatch() as watch:
                for batch in batches(self.documents, BATCH):
                    stored += len(collection.insert_many(batch, ordered=False).inserted_ids)
        finally:
            self._drop(name)
        problems = (
            []
            if stored == len(self.documents)
            else [f"{stored} documents inserted of {len(self.documents)}"]
        )
        return Sample.of(len(self.documents), watch, problems)

    def teardown(self) -> None:
        if self.client is not None:
            for name in list(self.databases):
                self._drop(name)
            self.client.close()
            self.client = None
        self.events, self.documents = [], []
