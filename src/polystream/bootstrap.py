"""Wiring: real adapters from settings. The only module that knows every implementation.

Imports of the drivers happen inside the functions, so a process loads only what it uses.
"""

from __future__ import annotations

import os
import socket

from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.domain.events import Sink, topics_for
from polystream.settings import Settings
from polystream.sinks.ports import EventStore
from polystream.sinks.receipts import RedisReceiptLog
from polystream.sinks.worker import SinkWorker, WorkerConfig


def client_id(role: str) -> str:
    return f"polystream-{role}-{socket.gethostname()}-{os.getpid()}"


def publisher(settings: Settings, role: str) -> KafkaEventPublisher:
    return KafkaEventPublisher(settings.kafka, client_id=client_id(role))


def receipt_log(settings: Settings) -> RedisReceiptLog:
    import redis

    return RedisReceiptLog(redis.Redis.from_url(
        settings.redis.url, socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.socket_timeout_s))


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

        return RedisLiveStore.from_settings(settings.redis)
    raise ValueError(f"no store sink {sink}")


def sink_worker(sink: Sink, settings: Settings, config: WorkerConfig) -> SinkWorker:
    role = f"worker-{sink.value}"
    return SinkWorker(
        sink=sink,
        consumer=KafkaEventConsumer(
            settings.kafka, group_id=settings.kafka.consumer_group(sink.value),
            topics=[t.value for t in topics_for(sink)], client_id=client_id(role)),
        store=store(sink, settings),
        publisher=publisher(settings, role),
        receipts=receipt_log(settings),
        config=config,
    )
