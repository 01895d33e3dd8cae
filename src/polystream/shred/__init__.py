"""Crypto-shredding of the data topics: per-user data keys seal the ``x-personal`` fields of
every record (:mod:`.fields`), keys live in PostgreSQL (:mod:`.keys`), publishers and
consumers are wrapped at the bus boundary (:mod:`.bus`). ``privacy.encrypt_personal``
switches it on for a whole deployment; these helpers return their argument unchanged when
it is off."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from polystream.bus.ports import BulkEventPublisher, EventConsumer
from polystream.bus.topic_read import TopicRecord, read_topics
from polystream.settings import Settings
from polystream.shred.bus import (
    KeyCache,
    SeekableConsumer,
    ShreddingConsumer,
    ShreddingPublisher,
    open_values,
)
from polystream.shred.keys import PostgresKeyStore

C = TypeVar("C", bound=EventConsumer)


def key_cache(settings: Settings, role: str) -> KeyCache | None:
    """A key cache over PostgreSQL for one process role, or None when shredding is off."""
    if not settings.privacy.encrypt_personal:
        return None
    database = settings.privacy.keys_database
    postgres = settings.postgres
    if database is not None:
        from polystream.sinks.postgres.migrate import upgrade

        # Idempotent; a producer may come first (the accounts database is migrated by its
        # PostgreSQL sink at start-up, a separate key database by whoever uses it first).
        postgres = postgres.model_copy(update={"database": database})
        upgrade(postgres)
    store = PostgresKeyStore(postgres, application_name=f"polystream-keys-{role}")
    return KeyCache(store, size=settings.privacy.key_cache_size,
                    ttl_s=settings.privacy.key_cache_ttl_s)


def wrap_publisher(settings: Settings, publisher: BulkEventPublisher,
                   role: str) -> BulkEventPublisher:
    """``publisher``, sealing personal fields when shredding is on."""
    keys = key_cache(settings, role)
    return publisher if keys is None else ShreddingPublisher(publisher, keys)


def wrap_consumer(settings: Settings, consumer: SeekableConsumer, role: str, *,
                  erases: bool = False) -> SeekableConsumer:
    """``consumer``, opening sealed fields when shredding is on; ``erases`` for the one
    consumer that destroys the keys of erased users (the PostgreSQL sink's)."""
    keys = key_cache(settings, role)
    return consumer if keys is None else ShreddingConsumer(consumer, keys, erases=erases)


def read_topics_opened(settings: Settings, topics: Iterable[str], *,
                       since: datetime | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> dict[tuple[str, int], list[TopicRecord]]:
    """:func:`~polystream.bus.topic_read.read_topics`, sealed fields opened (one key lookup
    per partition) when shredding is on. Raises ``KeyStoreError`` if the keys cannot be read."""
    partitions = read_topics(settings.kafka, topics, since=since, progress=progress)
    keys = key_cache(settings, "topic-read")
    if keys is None:
        return partitions
    try:
        return {tp: [rec if new is rec.value else replace(rec, value=new)
                     for rec, new in zip(records, open_values([r.value for r in records], keys),
                                         strict=True)]
                for tp, records in partitions.items()}
    finally:
        keys.close()


__all__ = ["KeyCache", "ShreddingConsumer", "ShreddingPublisher", "key_cache",
           "read_topics_opened", "wrap_consumer", "wrap_publisher"]
