"""Crypto-shredding of the data topics: per-user data keys seal the ``x-personal`` fields of
every record (:mod:`.fields`), keys live in PostgreSQL (:mod:`.keys`), publishers and
consumers are wrapped at the bus boundary (:mod:`.bus`). ``privacy.encrypt_personal``
switches it on for a whole deployment; these helpers return their argument unchanged when
it is off."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
    """A key cache for a producer (one that seals), or None when shredding is off."""
    return opening_keys(settings, role) if settings.privacy.encrypt_personal else None


def opening_keys(settings: Settings, role: str) -> KeyCache:
    """A key cache over PostgreSQL for one process role, whatever ``encrypt_personal`` says:
    consumers open every sealed field they meet (see :func:`wrap_consumer`). Nothing
    connects before the first key is needed."""
    database = settings.privacy.keys_database
    postgres = settings.postgres
    prepare = None
    if database is not None:
        from polystream.sinks.postgres.migrate import upgrade

        # Idempotent; a producer may come first (the accounts database is migrated by its
        # PostgreSQL sink at start-up, a separate key database by whoever uses it first).
        postgres = postgres.model_copy(update={"database": database})
        keys_postgres = postgres

        def prepare() -> None:
            upgrade(keys_postgres)

    store = PostgresKeyStore(postgres, application_name=f"polystream-keys-{role}",
                             prepare=prepare)
    return KeyCache(store, size=settings.privacy.key_cache_size,
                    ttl_s=settings.privacy.key_cache_ttl_s)


def wrap_publisher(settings: Settings, publisher: BulkEventPublisher,
                   role: str) -> BulkEventPublisher:
    """``publisher``, sealing personal fields when shredding is on."""
    keys = key_cache(settings, role)
    return publisher if keys is None else ShreddingPublisher(publisher, keys)


def wrap_consumer(settings: Settings, consumer: SeekableConsumer, role: str, *,
                  erases: bool = False) -> SeekableConsumer:
    """``consumer``, opening sealed fields; ``erases`` for the one consumer that destroys the
    keys of erased users (the PostgreSQL sink's).

    Whatever ``encrypt_personal`` says: the setting decides what producers write, and a
    consumer must read what is on the topics (records sealed before the setting was turned
    off, or by producers switched on first). A record without a sealed field costs one
    substring test and no key lookup."""
    return ShreddingConsumer(consumer, opening_keys(settings, role), erases=erases)


def read_topics_opened(settings: Settings, topics: Iterable[str], *,
                       since: datetime | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> dict[tuple[str, int], list[TopicRecord]]:
    """:func:`~polystream.bus.topic_read.read_topics`, sealed fields opened (one key lookup
    per partition; whatever ``encrypt_personal`` says, as :func:`wrap_consumer`). Raises
    ``KeyStoreError`` if the keys cannot be read."""
    partitions = read_topics(settings.kafka, topics, since=since, progress=progress)
    keys = opening_keys(settings, "topic-read")
    try:
        return {tp: [rec if new is rec.value else replace(rec, value=new)
                     for rec, new in zip(records, open_values([r.value for r in records], keys),
                                         strict=True)]
                for tp, records in partitions.items()}
    finally:
        keys.close()


def open_records(settings: Settings, values: Sequence[bytes], role: str = "reader"
                 ) -> list[bytes]:
    """Raw record values (read with any Kafka client) with their sealed fields opened, as
    a consumer sees them. Raises ``KeyStoreError`` if the keys cannot be read."""
    keys = opening_keys(settings, role)
    try:
        return open_values(values, keys)
    finally:
        keys.close()


__all__ = ["KeyCache", "ShreddingConsumer", "ShreddingPublisher", "key_cache",
           "open_records", "opening_keys", "read_topics_opened", "wrap_consumer", "wrap_publisher"]
