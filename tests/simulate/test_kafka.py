"""Acceptance on the real stack: simulated events published to Kafka, read back with a plain
confluent-kafka consumer (not our bus code) and validated with `jsonschema` against the
exported JSON Schemas (not our pydantic models)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
from confluent_kafka import Consumer, TopicPartition
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from polystream.bus.admin import end_offsets, ensure_topics
from polystream.bus.topology import topic_of, topic_specs
from polystream.cli import simulate as cli
from polystream.domain.events import EVENT_TYPES
from polystream.settings import Settings
from polystream.shred import open_records
from polystream.simulate import SimConfig, generate

pytestmark = pytest.mark.stack

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EVENTS = 1000


@cache
def _validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_simulated_events_in_kafka_match_the_json_schema_and_keep_per_key_order(
    settings: Settings, unique: str
) -> None:
    topics = sorted({topic_of(t).value for t in EVENT_TYPES})
    ensure_topics(settings.kafka, [s for s in topic_specs(settings.kafka) if s.name in topics])
    before = {topic: end_offsets(settings.kafka, topic) for topic in topics}
    source = f"simulator-test-{unique}"
    seed = int(unique[:6], 16)

    app = typer.Typer()
    app.command()(cli.simulate)
    result = CliRunner().invoke(app, ["--events", str(EVENTS), "--seed", str(seed), "--titles",
                                      "20", "--source", source, "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "acked by Kafka" in result.output

    after = {topic: end_offsets(settings.kafka, topic) for topic in topics}
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"simulate-test-{unique}",
        "enable.auto.commit": False,
    })  # fmt: skip
    consumer.assign([
        TopicPartition(topic, partition, offset)
        for topic, offsets in before.items() for partition, offset in offsets.items()
        if after[topic][partition] > offset
    ])  # fmt: skip
    wanted = sum(after[t][p] - o for t, offsets in before.items() for p, o in offsets.items())
    received: list[tuple[str, int, int, bytes, bytes]] = []
    deadline = time.monotonic() + 60
    seen = 0
    try:
        while seen < wanted and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    continue
                seen += 1
                value = message.value() or b""
                if f'"source":"{source}"'.encode() in value:  # others share these topics
                    where = (message.topic() or "", message.partition() or 0, message.offset() or 0)
                    received.append((*where, message.key() or b"", value))
    finally:
        consumer.close()

    assert len(received) == EVENTS
    # Personal fields are sealed on the topics (crypto-shredding): opened as consumers do.
    opened = open_records(settings, [value for *_, value in received], "simulate-test")
    assert all(b'"pgcm1:' not in value for value in opened)
    received = [(topic, partition, offset, key, value) for (topic, partition, offset, key, _),
                value in zip(received, opened, strict=True)]
    by_key: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for topic, partition, offset, key, value in received:
        event = json.loads(value)
        errors = sorted(_validator(event["type"]).iter_errors(event), key=str)
        assert not errors, f"{event['type']}: {errors[0].message}"
        assert event["source"] == source
        assert topic == topic_of(event["type"]).value
        assert key.decode() == event["key"]
        by_key[event["key"]].append((partition, offset, event))

    expected = list(generate(SimConfig(seed=seed, titles=20, source=source), EVENTS))
    assert {v for *_, v in received} == {e.value for e in expected}  # the very same bytes
    expected_order: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in expected:
        expected_order[(item.topic, item.key)].append(json.loads(item.value)["event_id"])
    partitions_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    in_kafka: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for event_key, keyed in by_key.items():
        for partition, offset, event in keyed:
            event_topic = topic_of(event["type"]).value
            partitions_of[(event_topic, event_key)].add(partition)
            in_kafka[(event_topic, event_key)].append((offset, event))
    for topic_key, records in in_kafka.items():
        # One key lands in one partition of its topic; the partition's offsets give Kafka's
        # order, which must be the simulator's order and non-decreasing in event time.
        assert len(partitions_of[topic_key]) == 1
        events = [event for _, event in sorted(records, key=lambda r: r[0])]
        assert [e["event_id"] for e in events] == expected_order[topic_key]
        times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
        assert times == sorted(times)
