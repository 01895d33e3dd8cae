"""The topic layout of polystream as `TopicSpec`s, from the event contract and the settings."""

from __future__ import annotations

from polystream.bus.ports import TopicSpec
from polystream.domain.events import TOPIC_PARTITIONS, Topic
from polystream.settings import KafkaSettings

_DAY_MS = 24 * 3600 * 1000

# Dead letters wait for a human; receipts only feed the audit trail.
_TOPIC_CONFIG: dict[Topic, dict[str, str]] = {
    Topic.DEADLETTER: {"retention.ms": str(30 * _DAY_MS)},
    Topic.RECEIPTS: {"retention.ms": str(7 * _DAY_MS)},
}


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    # An explicitly set partition count applies to every topic (a small test stack, or a big
    # cluster); otherwise each topic keeps the default sized for its traffic.
    override = settings.partitions if "partitions" in settings.model_fields_set else None
    return [
        TopicSpec(topic.value, override or TOPIC_PARTITIONS[topic], _TOPIC_CONFIG.get(topic, {}))
        for topic in Topic
    ]
