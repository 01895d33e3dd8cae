"""The observatory of the real stack: Kafka's admin API, PostgreSQL, MongoDB (FerretDB),
Redis and the audit index, each probed with a client of its own kept for the page's life."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from polystream.audit.documents import DocKind
from polystream.audit.ports import AuditIndex, AuditQuery
from polystream.bus.admin import GroupOffsets, _partition_counts, _result
from polystream.bus.ports import BusError
from polystream.domain.events import Sink
from polystream.observe.observatory import Observatory
from polystream.settings import KafkaSettings, Settings

#: The account tables, as the migration creates them (``plans`` is reference data).
ACCOUNT_TABLES = ("users", "subscriptions", "payments", "preferences", "ratings",
                  "processed_events")
CATALOG_COLLECTIONS = ("titles", "relations", "assets.files", "assets.chunks")

_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


class KafkaBus:
    """Offsets and lag through one admin client (one per snapshot would reconnect each second),
    in as few round trips as the admin API allows: one offsets request for every partition of
    every topic, reused by the lag of each group in the same snapshot."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._timeout = min(5.0, settings.request_timeout_s)
        self._settings = settings.model_copy(update={"request_timeout_s": self._timeout})
        self._groups: dict[str, GroupOffsets] = {}
        self._config: dict[str, str | int | float | bool] = {
            **settings.client_config(), "client.id": "polystream-dashboard",
                        "log_level": 4}
        self._client: AdminClient | None = None
        self._lock = threading.Lock()
        self._ends: tuple[float, dict[str, dict[int, int]]] = (0.0, {})

    @property
    def _admin(self) -> AdminClient:
        # Made when the dashboard is first opened: an API process that never shows it (most
        # of them, and every test) runs no librdkafka threads for it.
        with self._lock:
            if self._client is None:
                self._client = AdminClient(self._config)
            return self._client

    def _group(self, group_id: str) -> GroupOffsets:
        with self._lock:
            if group_id not in self._groups:
                self._groups[group_id] = GroupOffsets(self._settings, group_id)
            return self._groups[group_id]

    def close(self) -> None:
        with self._lock:
            groups, self._groups = list(self._groups.values()), {}
        for group in groups:
            with contextlib.suppress(Exception):
                group.close()

    def _list(self, partitions: dict[str, int], spec: OffsetSpec) -> dict[str, dict[int, int]]:
        if not partitions:
            return {}
        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, n in partitions.items() for p in range(n)},
            request_timeout=self._timeout)
        out: dict[str, dict[int, int]] = {t: {} for t in partitions}
        for tp, fut in futures.items():
            out[tp.topic][tp.partition] = _result(
                fut, f"offsets of {tp.topic}[{tp.partition}]", self._timeout).offset
        return out

    def end_offsets(self, topics: list[str]) -> dict[str, dict[int, int]]:
        counts = _partition_counts(self._admin, self._timeout)
        ends = self._list({t: counts[t] for t in topics if t in counts}, _LATEST)
        self._ends = (time.monotonic(), ends)
        return ends

    def group_lag(self, group_id: str, topics: list[str]) -> dict[tuple[str, int], int]:
        taken, ends = self._ends
        if time.monotonic() - taken > 2.0 or any(t not in ends for t in topics):
            ends = {**ends, **self.end_offsets(topics)}
        topics = [t for t in topics if t in ends]
        try:
            committed = self._group(group_id).committed(
                (t, p) for t in topics for p in ends[t])
        except (KafkaException, BusError):
            committed = {}
        # A partition the group never committed counts from its first retained record.
        fresh = {t: len(ends[t]) for t in topics
                 if any(committed.get((t, p), -1) < 0 for p in ends[t])}
        starts = self._list(fresh, _EARLIEST)
        lag: dict[tuple[str, int], int] = {}
        for t in topics:
            for p, end in ends[t].items():
                done = committed.get((t, p), -1)
                lag[(t, p)] = max(0, end - (done if done >= 0 else starts[t].get(p, 0)))
        return lag


class _Probe:
    def __init__(self, name: str, role: str, sizes: Callable[[], dict[str, int]]) -> None:
        self.name, self.role, self._sizes = name, role, sizes

    def sizes(self) -> dict[str, int]:
        return self._sizes()


class PostgresSizes:
    """Exact row counts (the demo compares them with its own totals), on one connection that
    is reopened when it breaks."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.postgres
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._settings.dsn(), autocommit=True,
                                             connect_timeout=3)
            try:
                sql = " UNION ALL ".join(
                    f"SELECT '{t}', count(*) FROM {t}" for t in ACCOUNT_TABLES)
                return {str(name): int(n) for name, n in self._conn.execute(sql).fetchall()}
            except psycopg.Error:
                self._conn.close()
                self._conn = None
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _audit_sizes(audit: AuditIndex) -> Callable[[], dict[str, int]]:
    def sizes() -> dict[str, int]:
        return {"events": audit.count(),
                "dead letters": audit.count(AuditQuery(kind=DocKind.DEAD_LETTER))}
    return sizes


def stack_observatory(settings: Settings,
                      audit: AuditIndex | None = None) -> tuple[Observatory, Callable[[], None]]:
    """The observatory and the function that closes its clients."""
    from polystream.bootstrap import open_audit_index
    from polystream.sinks.mongo import MongoCatalogStore
    from polystream.sinks.redis_live import RedisLiveStore

    index = audit or open_audit_index(settings, read_only=True)
    catalog = MongoCatalogStore.from_settings(settings.mongo)
    live = RedisLiveStore.from_settings(settings.redis, prefix=settings.redis.key_prefix)
    rds = redis.Redis.from_url(settings.redis.url, socket_timeout=3, socket_connect_timeout=3)
    pg = PostgresSizes(settings)
    db = catalog.database
    prefix = f"{settings.redis.key_prefix}:"

    def redis_sizes() -> dict[str, int]:
        # The whole database (receipts share it); the live state's own keys by SCAN would
        # cost a full pass every second.
        info = rds.info("memory")
        return {"keys": int(rds.dbsize()), "memory_bytes": int(info.get("used_memory", 0))}

    stores = [
        _Probe("postgres", "accounts", pg),
        _Probe("mongo", "catalog", lambda: {
            c: int(db[c].estimated_document_count()) for c in CATALOG_COLLECTIONS}),
        _Probe("redis", f"live state ({prefix}*) and receipts", redis_sizes),
        _Probe("audit", "audit index", _audit_sizes(index)),
    ]
    groups = {sink: settings.kafka.consumer_group(sink.value) for sink in Sink}
    bus = KafkaBus(settings.kafka)
    obs = Observatory(bus=bus, groups=groups, stores=stores,
                      live=live, catalog=catalog, audit=index)

    def close() -> None:
        for closer in (bus.close, pg.close, catalog.close, live.close, rds.close,
                       *(() if audit else (index.close,))):
            # Closing at shutdown: a client that fails to close must not keep the others open.
            with contextlib.suppress(Exception):
                closer()

    return obs, close
