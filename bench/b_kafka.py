"""2. Publish: the simulator through ``KafkaEventPublisher.publish_fire`` against a raw producer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer

from bench import data
from bench.core import Sample, Stopwatch, Variant
from polystream.bus import admin
from polystream.bus.kafka import KafkaEventPublisher, producer_config
from polystream.bus.ports import TopicSpec
from polystream.settings import Settings
from polystream.simulate import generate

PARTITIONS = 6
FLUSH_TIMEOUT_S = 120.0


class KafkaBench:
    name = "kafka"
    title = "Publish to Kafka (until the last ack)"
    unit = "events/s"

    def __init__(self, settings: Settings, run_id: str, quick: bool) -> None:
        self.settings = settings
        self.topic = f"bench.publish.{run_id}"
        self.count = 20_000 if quick else 200_000
        self.pairs: list[tuple[str, bytes]] = []
        self.pairs_300: list[tuple[str, bytes]] = []
        self.created = False

    def describe(self) -> str:
        return (
            "Ours: the simulator generates the default mix (polystream.simulate.generate, one "
            "Python thread writing JSON text) and KafkaEventPublisher.publish_fire sends each "
            "event; the clock stops when flush() returns, i.e. every event is acked "
            f"(acks=all, idempotent, lz4, linger 5 ms). Baseline: a raw confluent_kafka "
            "Producer with exactly the same configuration (producer_config) producing the same "
            "keys and values, generated beforehand, counting acks in a delivery callback. "
            "References, to split the gap: the raw producer with the values cut or padded to "
            "300 bytes; publish_fire alone on the pre-built values; the simulator alone, "
            f"without Kafka. One topic of {PARTITIONS} partitions, created and deleted by the "
            "benchmark."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count, "partitions": PARTITIONS, "topic": self.topic}

    def setup(self) -> None:
        events = data.stream(self.count)
        self.pairs = [(event.key, event.value) for event in events]
        self.pairs_300 = [(key, value[:300].ljust(300, b" ")) for key, value in self.pairs]
        admin.ensure_topics(self.settings.kafka, [TopicSpec(self.topic, PARTITIONS)])
        self.created = True

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, "generate + KafkaEventPublisher.publish_fire"),
            Variant(
                "baseline",
                "baseline",
                self._raw_same,
                "raw Producer.produce of the same pre-built values",
            ),
            Variant(
                "raw 300 B",
                "reference",
                self._raw_300,
                "raw Producer.produce of pre-built 300-byte values",
            ),
            Variant(
                "fire only",
                "reference",
                self._fire_only,
                "KafkaEventPublisher.publish_fire of the same pre-built values",
            ),
            Variant(
                "generate",
                "reference",
                self._generate_only,
                "polystream.simulate.generate alone, no Kafka",
            ),
        ]

    def _publisher(self, client_id: str) -> KafkaEventPublisher:
        publisher = KafkaEventPublisher(self.settings.kafka, client_id=client_id)
        # Connection, metadata and the idempotent producer id are set up before the clock.
        publisher.publish_fire(self.topic, "warm-up", b"{}")
        publisher.flush(30)
        return publisher

    def _ours(self, rep: int) -> Sample:
        publisher = self._publisher(f"bench-ours-{rep}")
        try:
            before = publisher.stats()
            source = generate(data.STREAM, self.count)
            # Like `polystream simulate`: the clock starts at the first event (the catalogue
            # is built before it).
            first = next(source)
            publish = publisher.publish_fire
            topic = self.topic
            sent = 1
            nbytes = len(first.value)
            with Stopwatch() as watch:
                publish(topic, first.key, first.value)
                for event in source:
                    publish(topic, event.key, event.value)
                    sent += 1
                    nbytes += len(event.value)
                publisher.flush(FLUSH_TIMEOUT_S)
            after = publisher.stats()
        finally:
            publisher.close(10)
        acked, failed = after.acked - before.acked, after.failed - before.failed
        return Sample.of(
            sent,
            watch,
            _ack_problems(sent, acked, failed),
            acked=acked,
            failed=failed,
            bytes=nbytes,
        )

    def _fire_only(self, rep: int) -> Sample:
        publisher = self._publisher(f"bench-fire-{rep}")
        try:
            before = publisher.stats()
            publish, topic = publisher.publish_fire, self.topic
            with Stopwatch() as watch:
                for key, value in self.pairs:
                    publish(topic, key, value)
                publisher.flush(FLUSH_TIMEOUT_S)
            after = publisher.stats()
        finally:
            publisher.close(10)
        acked, failed = after.acked - before.acked, after.failed - before.failed
        return Sample.of(
            len(self.pairs),
            watch,
            _ack_problems(len(self.pairs), acked, failed),
            acked=acked,
            failed=failed,
        )

    def _generate_only(self, rep: int) -> Sample:
        source = generate(data.STREAM, self.count)
        first = next(source)
        count = 1
        with Stopwatch() as watch:
            for _event in source:
                count += 1
        problems = [] if count == self.count else [f"generated {count} of {self.count}"]
        return Sample.of(count, watch, problems, first_type=first.type)

    def _raw_same(self, rep: int) -> Sample:
        return self._raw(self.pairs, f"bench-raw-{rep}")

    def _raw_300(self, rep: int) -> Sample:
        return self._raw(self.pairs_300, f"bench-raw300-{rep}")

    def _raw(self, pairs: Sequence[tuple[str, bytes]], client_id: str) -> Sample:
        counts = [0, 0]  # acked, failed

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            counts[err is not None] += 1

        conf = producer_config(self.settings.kafka, client_id)
        conf["on_delivery"] = delivered
        producer = Producer(conf)
        producer.produce(self.topic, b"{}", "warm-up")
        producer.flush(30)
        counts[:] = [0, 0]
        produce, poll, topic = producer.produce, producer.poll, self.topic
        with Stopwatch() as watch:
            for index, (key, value) in enumerate(pairs):
                while True:
                    try:
                        produce(topic, value, key)
                        break
                    except BufferError:  # local queue full: serve delivery reports
                        poll(0.01)
                if not index & 1023:
                    poll(0)
            remaining = producer.flush(FLUSH_TIMEOUT_S)
        problems = _ack_problems(len(pairs), counts[0], counts[1])
        if remaining:
            problems.append(f"{remaining} still queued after flush")
        return Sample.of(
            len(pairs),
            watch,
            problems,
            acked=counts[0],
            failed=counts[1],
            bytes=sum(len(value) for _, value in pairs),
        )

    def teardown(self) -> None:
        self.pairs, self.pairs_300 = [], []
        if self.created:
            admin.delete_topics(self.settings.kafka, [self.topic])
            self.created = False


def _ack_problems(sent: int, acked: int, failed: int) -> list[str]:
    if acked == sent and not failed:
        return []
    return [f"acked {acked} of {sent} sent ({failed} failed)"]
