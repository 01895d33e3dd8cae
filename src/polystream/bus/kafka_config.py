"""librdkafka settings of the bus's producers and consumers (see :mod:`polystream.bus.kafka` for
the delivery semantics they implement), and how its errors read in messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError

from polystream.settings import KafkaSettings

# Measured on the dev box with 200-byte JSON-ish values (see the bus report): lz4 produced
# faster than zstd at a similar ratio for small messages, and costs the broker less CPU.
COMPRESSION = "lz4"


def producer_config(settings: KafkaSettings, client_id: str,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **settings.client_config(),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": COMPRESSION,
        # A few ms of batching turns 50k+ msg/s into a few hundred requests/s; the latency it adds
        # is invisible next to the stores' commit times.
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        # Room for ~2 s of a 200k msg/s burst before publish has to wait for acks.
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # Java-compatible key hashing: a key lands in the same partition whichever client (or the
        # in-memory broker, which implements the same murmur2) produced it.
        "partitioner": "murmur2_random",
        "request.timeout.ms": int(settings.request_timeout_s * 1000),
    }
    conf.update(extra or {})
    return conf


def consumer_config(settings: KafkaSettings, group_id: str, client_id: str,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **settings.client_config(),
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        # Nothing is stored behind the worker's back either; commit() passes explicit offsets.
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        # A crashed worker's partitions move after 10 s instead of 45 s; frequent heartbeats make
        # the surviving members notice a rebalance within a second.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
    }
    conf.update(extra or {})
    if conf.get("group.protocol") == "consumer":
        # KIP-848 assigns on the broker; librdkafka rejects the client-side settings.
        for key in ("partition.assignment.strategy", "session.timeout.ms",
                    "heartbeat.interval.ms"):
            if extra is None or key not in extra:
                conf.pop(key, None)
    return conf


def describe(err: KafkaError) -> str:
    return f"{err.name()}: {err.str()}"


__all__ = ["COMPRESSION", "consumer_config", "describe", "producer_config"]
