"""The API's part of the composition root (`bootstrap.py` wires the workers): wires the API
to the real stack: Kafka for events, Redis for receipts, login sessions and live state,
PostgreSQL for accounts. The API package itself receives built dependencies (`ApiDeps`).

`app_factory` is what uvicorn calls (factory mode) in each worker process, so every worker
builds its own producer and Redis pool from the same settings. Building them connects
nothing synchronously (librdkafka and redis-py connect on first use).
"""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka.admin import AdminClient
from fastapi import FastAPI

from polystream.api.app import create_app
from polystream.api.deps import ApiDeps
from polystream.api.login.ratelimit import RedisAttemptCounter
from polystream.api.login.store import RedisSessionStore
from polystream.bootstrap import open_audit_index, receipt_log
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.topology import topic_of
from polystream.domain.events import EVENT_TYPES
from polystream.observe import otlp
from polystream.observe.stack import stack_observatory
from polystream.reads.catalog import MongoCatalogReads
from polystream.reads.live import FastCache, LiveReads
from polystream.reads.service import ReadService
from polystream.settings import KafkaSettings, RedisSettings, Settings, load_settings
from polystream.shred import wrap_publisher
from polystream.sinks.postgres.store import PostgresAccountStore
from polystream.sinks.redis_live import RedisLiveStore
from polystream.stores.redis_client import connect

CLIENT_ID = "polystream-api"


def producer_overrides(settings: Settings) -> dict[str, Any]:
    """librdkafka settings that make a 503 mean "not published".

    librdkafka retries a message until ``message.timeout.ms`` (5 minutes by default), long
    after the API has answered 503 on its own timeout, so a refused command could still land
    later. Giving up at 80% of the API's publish timeout lets the delivery report (a definite
    failure) arrive before the API stops waiting; librdkafka checks timeouts about once a
    second, hence the margin.
    """
    publish_timeout_ms = settings.api.publish_timeout_s * 1000
    return {"message.timeout.ms": max(1000, int(publish_timeout_ms * 0.8))}


class KafkaReadiness:
    """Ready = the brokers answer a metadata request and every event topic exists (publishing
    to a missing topic fails, as the broker does not auto-create ours)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._admin: AdminClient | None = None
        self._lock = threading.Lock()
        self._topics = sorted({topic_of(t).value for t in EVENT_TYPES})

    def __call__(self) -> None:
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient({
                    **self._settings.client_config(),
                    "client.id": f"{CLIENT_ID}-readiness",
                })
            admin = self._admin
        metadata = admin.list_topics(timeout=2.0)
        missing = [t for t in self._topics if t not in metadata.topics]
        if missing:
            raise RuntimeError(f"topics missing: {', '.join(missing)} (run `polystream topics "
                               "ensure`)")


def build_deps(settings: Settings) -> ApiDeps:
    # Seals personal fields when shredding is on: a user's first event costs one key
    # round trip to PostgreSQL, later ones a cache hit.
    publisher = wrap_publisher(settings, KafkaEventPublisher(
        settings.kafka,
        client_id=CLIENT_ID,
        extra=producer_overrides(settings),
        # A full local queue means the brokers have been unreachable for a while: fail the
        # request at once (503) instead of blocking the event loop waiting for room.
        queue_full_timeout_s=0.0,
    ), "api")
    receipts = receipt_log(settings)
    audit = open_audit_index(settings, read_only=True)
    # Clients only: nothing is queried until the dashboard is first opened.
    observatory, close_observatory = stack_observatory(settings, audit)
    # Short timeouts: an API request must fail fast (503) rather than queue behind a stuck
    # store; the worker's long ones are for batches.
    accounts = PostgresAccountStore(settings.postgres, statement_timeout_s=2.0,
                                    lock_timeout_s=1.0, application_name="polystream-api")
    prefix = settings.redis.key_prefix
    redis_client = connect(settings.redis.url, socket_timeout_s=min(
        2.0, settings.redis.socket_timeout_s))
    live = RedisLiveStore(redis_client, prefix=prefix)
    return ApiDeps(
        reads=read_service(settings),
        settings=settings,
        publisher=publisher,
        receipts=receipts,
        ready_check=KafkaReadiness(settings.kafka),
        closers=(lambda: publisher.close(settings.api.publish_timeout_s), receipts.close,
                 close_observatory, audit.close, accounts.close, redis_client.close),
        audit=audit,
        observatory=observatory,
        accounts=accounts,
        live=live,
        sessions=RedisSessionStore(redis_client, prefix),
        login_attempts=RedisAttemptCounter(redis_client, prefix),
    )


def read_service(settings: Settings) -> ReadService:
    """MongoDB and Redis clients of their own for the reads, with the reads' short timeouts
    (nothing connects until the first request)."""
    timeout = settings.reads.store_timeout_s
    return ReadService(MongoCatalogReads.from_settings(settings.mongo, timeout),
                       live_reads(settings.redis, timeout), settings.reads)


def live_reads(settings: RedisSettings, timeout_s: float) -> LiveReads:
    # Half the budget per attempt: the client retries a dropped connection once.
    socket_timeout_s = max(0.1, timeout_s / 2)
    client = connect(settings.url, socket_timeout_s=socket_timeout_s)
    fast = FastCache.from_url(settings.url, settings.key_prefix, socket_timeout_s)
    return LiveReads(RedisLiveStore(client, prefix=settings.key_prefix), closer=client.close,
                     fast=fast)


def create_app_from_settings(settings: Settings) -> FastAPI:
    return create_app(build_deps(settings))


def app_factory() -> FastAPI:
    """For ``uvicorn --factory polystream.bootstrap_api:app_factory``."""
    settings = load_settings()
    # Before the app is built: `create_app` adds the request spans only when tracing is on.
    otlp.configure(settings.observability, "api")
    return create_app_from_settings(settings)
