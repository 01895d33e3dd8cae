"""Wiring: real adapters from settings. The only module that knows every implementation.

Imports of the drivers happen inside the functions, so a process loads only what it uses.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from polystream.audit.ports import AuditIndex
from polystream.audit.worker import AuditConfig, AuditWorker
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.ports import BulkEventPublisher
from polystream.bus.topology import topics_for
from polystream.domain.events import Sink
from polystream.receipts.redis_log import RedisReceiptLog
from polystream.settings import Settings
from polystream.shred import wrap_consumer, wrap_publisher
from polystream.sinks.ports import EventStore
from polystream.sinks.worker import SinkWorker, WorkerConfig


def client_id(role: str) -> str:
    return f"polystream-{role}-{socket.gethostname()}-{os.getpid()}"


def publisher(settings: Settings, role: str) -> BulkEventPublisher:
    """A producer of ``role``; it seals personal fields when shredding is on (a dead letter
    carries the record as its sink read it: opened)."""
    return wrap_publisher(settings, KafkaEventPublisher(settings.kafka, client_id=client_id(role)),
                          role)


def group_id(settings: Settings, sink: Sink) -> str:
    """The consumer group of ``sink`` in this deployment."""
    return settings.kafka.consumer_group(sink.value)


def receipt_log(settings: Settings) -> RedisReceiptLog:
    import redis

    return RedisReceiptLog(redis.Redis.from_url(
        settings.redis.url, socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.socket_timeout_s),
        prefix=settings.redis.key_prefix)


def store(sink: Sink, settings: Settings) -> EventStore:
    """The store of a sink, ready to use: migrations applied, indexes ensured."""
    if sink is Sink.POSTGRES:
        from polystream.sinks.postgres.migrate import upgrade
        from polystream.sinks.postgres.store import PostgresAccountStore

        upgrade(settings.postgres)
        return PostgresAccountStore(settings.postgres)
    if sink is Sink.MONGO:
        from polystream.sinks.mongo import MongoCatalogStore

        catalog = MongoCatalogStore.from_settings(settings.mongo)
        catalog.ensure_indexes()
        return catalog
    if sink is Sink.REDIS:
        from polystream.sinks.redis_live import RedisLiveStore

        return RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
    raise ValueError(f"no store sink {sink}")


def sink_worker(sink: Sink, settings: Settings, config: WorkerConfig) -> SinkWorker:
    """A sink ready to run. The store comes first (migrations, indexes: the steps most likely
    to fail at start-up), so a failed attempt leaves no Kafka client behind to clean up."""
    role = f"worker-{sink.value}"
    sink_store = store(sink, settings)
    if sink is Sink.MONGO:
        from polystream.reads.invalidation import CacheInvalidatingStore
        from polystream.sinks.redis_live import RedisLiveStore

        sink_store = CacheInvalidatingStore(sink_store, RedisLiveStore.from_settings(
            settings.redis, prefix=settings.redis.key_prefix), owns_invalidator=True)
    try:
        receipts = receipt_log(settings)
        return SinkWorker(
            sink=sink,
            # The PostgreSQL sink owns the data keys: it destroys those of erased users.
            consumer=wrap_consumer(settings, KafkaEventConsumer(
                settings.kafka, group_id=group_id(settings, sink),
                topics=[t.value for t in topics_for(sink)], client_id=client_id(role)),
                role, erases=sink is Sink.POSTGRES),
            store=sink_store,
            publisher=publisher(settings, role),
            receipts=receipts,
            config=config,
        )
    except BaseException:
        sink_store.close()
        raise


def audit_worker(settings: Settings, config: AuditConfig) -> AuditWorker:
    """The auditor ready to run: its index reachable and its templates in place."""
    from polystream.audit.worker import audit_secret

    secret = audit_secret(settings)
    index = open_audit_index(settings)
    try:
        index.ensure()
        return AuditWorker(
            consumer=wrap_consumer(settings, KafkaEventConsumer(
                settings.kafka, group_id=group_id(settings, Sink.AUDIT),
                topics=[t.value for t in topics_for(Sink.AUDIT)],
                client_id=client_id("audit")), "audit"),
            index=index, publisher=publisher(settings, "audit"), secret=secret, config=config,
            # Its dead letters are claimed where the sinks claim theirs (its own receipts
            # are not recorded there: the API's event status reads the store sinks').
            claims=receipt_log(settings))
    except BaseException:
        index.close()
        raise


def open_audit_index(
    settings: Settings,
    *,
    read_only: bool = False,
    jsonl_dir: Path | None = None,
    retention_days: int | None = None,
) -> AuditIndex:
    """OpenSearch when ``opensearch.enabled``, JSONL files otherwise; ``retention_days``
    defaults to ``opensearch.retention_days``."""
    if retention_days is None:
        retention_days = settings.opensearch.retention_days
    if settings.opensearch.enabled:
        from polystream.audit.opensearch import OpenSearchAuditIndex

        return OpenSearchAuditIndex(settings.opensearch, retention_days=retention_days,
                                    read_only=read_only)
    from polystream.audit.jsonl import JsonlAuditIndex
    from polystream.audit.worker import default_jsonl_dir

    return JsonlAuditIndex(jsonl_dir or default_jsonl_dir(settings), read_only=read_only,
                           retention_days=retention_days)
