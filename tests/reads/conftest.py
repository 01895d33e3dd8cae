"""The public read API over a small catalog, on either backend: ``memory`` (the embedded
mode's in-memory stores) or ``stack`` (FerretDB and Redis of the real stack, a fresh database
and key prefix per test). Every test of the API runs on both: the in-memory adapters pass
the same tests as the real ones."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pymongo import MongoClient

from polystream.api import ApiDeps, create_app
from polystream.bootstrap_api import live_reads
from polystream.bus.memory import InMemoryBroker, InMemoryEventPublisher
from polystream.domain.events import AnyEvent
from polystream.reads.catalog import MemoryCatalogReads, MongoCatalogReads
from polystream.reads.live import LiveReads
from polystream.reads.service import ReadService
from polystream.receipts import InMemoryReceiptLog
from polystream.settings import ApiSettings, ReadSettings, Settings
from polystream.sinks.memory_catalog import InMemoryCatalogStore
from polystream.sinks.memory_live import InMemoryLiveStore
from polystream.sinks.mongo import MongoCatalogStore
from polystream.sinks.ports import EventStore
from polystream.sinks.redis_live import RedisLiveStore

from .data import catalog_events, live_events

READ_SETTINGS = ReadSettings(store_timeout_s=1.5, cache_retry_s=0.0)
#: For tests of what the cache holds, not of how fast it answers: on the loaded 2-core CI
#: machine a Redis call past the default 0.5 s budget skipped a cache write (seen in CI).
#: The store-down tests keep the default budget, since they measure it.
PATIENT_READ_SETTINGS = READ_SETTINGS.model_copy(update={"cache_timeout_s": 5.0,
                                                         "store_timeout_s": 5.0})
OPERATOR_TOKEN = "reads-operator-token-0123456789"


@dataclass
class ReadHarness:
    backend: str
    client: TestClient
    service: ReadService
    catalog: EventStore
    live: EventStore

    def apply(self, *events: AnyEvent) -> None:
        """What the sinks do: the catalog event to MongoDB, then to Redis."""
        for store in (self.catalog, self.live):
            store.apply(list(events))


def make_client(service: ReadService, settings: Settings | None = None) -> TestClient:
    broker = InMemoryBroker()
    settings = settings or Settings(
        reads=READ_SETTINGS, api=ApiSettings(operator_token=SecretStr(OPERATOR_TOKEN)))
    app = create_app(ApiDeps(settings=settings,
                             publisher=InMemoryEventPublisher(broker),
                             receipts=InMemoryReceiptLog(), reads=service))
    return TestClient(app)


def _load(catalog: EventStore, live: EventStore) -> None:
    catalog.apply(catalog_events())
    live.apply(live_events())


def memory_harness() -> Generator[ReadHarness, None, None]:
    catalog, live = InMemoryCatalogStore(), InMemoryLiveStore()
    _load(catalog, live)
    service = ReadService(MemoryCatalogReads(catalog), LiveReads.in_memory(live),
                          READ_SETTINGS)
    with make_client(service) as client:
        yield ReadHarness("memory", client, service, catalog, live)


def stack_harness(settings: Settings, unique: str, read_settings: ReadSettings = READ_SETTINGS
                  ) -> Generator[ReadHarness, None, None]:
    mongo_settings = settings.mongo.model_copy(update={"database": f"reads_{unique}"})
    catalog = MongoCatalogStore.from_settings(mongo_settings)
    catalog.ensure_indexes()
    live = RedisLiveStore(settings.redis.url, prefix=f"reads{unique}")
    try:
        _load(catalog, live)
        service = ReadService(
            MongoCatalogReads.from_settings(mongo_settings, read_settings.store_timeout_s),
            live_reads(
                settings.redis.model_copy(update={"key_prefix": f"reads{unique}"}),
                read_settings.store_timeout_s),
            read_settings)
        with make_client(service) as client:
            yield ReadHarness("stack", client, service, catalog, live)
    finally:
        live.clear()
        live.close()
        dropper: MongoClient[dict[str, Any]] = MongoClient(mongo_settings.url)
        dropper.drop_database(mongo_settings.database)
        dropper.close()
        catalog.close()


@pytest.fixture(params=["memory", pytest.param("stack", marks=pytest.mark.stack)])
def reads(request: pytest.FixtureRequest, settings: Settings, unique: str
          ) -> Iterator[ReadHarness]:
    if request.param == "memory":
        yield from memory_harness()
    else:
        yield from stack_harness(settings, unique, PATIENT_READ_SETTINGS)


@pytest.fixture
def stack_reads(settings: Settings, unique: str) -> Iterator[ReadHarness]:
    yield from stack_harness(settings, unique)
