from __future__ import annotations

import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

# The documented import path; the package's stubs just do not re-export NewTopic.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from polystream.settings import Settings

pytestmark = pytest.mark.stack

N_MESSAGES = 10_000
N_KEYS = 100


def test_idempotent_produce_and_group_consume_keep_order(settings: Settings, unique: str) -> None:
    bootstrap = settings.kafka.bootstrap_servers
    topic = f"smoke-{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(10)
    try:
        meta = admin.list_topics(topic, timeout=10)
        assert len(meta.topics[topic].partitions) == 6

        acked: list[tuple[str, int]] = []
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: object) -> None:
            if err is not None:
                errors.append(err)
            else:
                acked.append((msg.key().decode(), msg.partition()))  # type: ignore[attr-defined]

        producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "compression.type": "lz4", "linger.ms": 5,
        })
        for i in range(N_MESSAGES):
            key = f"k{i % N_KEYS}"
            producer.produce(topic, key=key, value=f"{key}:{i // N_KEYS}", on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert errors == []
        assert len(acked) == N_MESSAGES
        # A key always lands in one partition.
        partitions_of = defaultdict(set)
        for key, part in acked:
            partitions_of[key].add(part)
        assert all(len(p) == 1 for p in partitions_of.values())

        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"smoke-{unique}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        consumer.subscribe([topic])
        seen: dict[str, list[int]] = defaultdict(list)
        received = 0
        deadline = time.monotonic() + 60
        try:
            while received < N_MESSAGES and time.monotonic() < deadline:
                batch = consumer.consume(num_messages=1000, timeout=1.0)
                for msg in batch:
                    assert msg.error() is None, msg.error()
                    value, msg_key = msg.value(), msg.key()
                    assert value is not None and msg_key is not None
                    key, seq = value.decode().split(":")
                    assert key == msg_key.decode()
                    seen[key].append(int(seq))
                    received += 1
                if batch:
                    consumer.commit(asynchronous=False)
            assert received == N_MESSAGES
            assert all(seqs == list(range(N_MESSAGES // N_KEYS)) for seqs in seen.values())
            assert len(seen) == N_KEYS
            committed = consumer.committed(
                [TopicPartition(topic, p) for p in range(6)], timeout=10)
            assert sum(tp.offset for tp in committed) == N_MESSAGES
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(10)
