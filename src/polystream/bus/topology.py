"""The Kafka topology: topics and their partitions, consumer groups, dead-letter headers.

The event contract names the aggregate family of every event type and the sinks that consume
it (:mod:`polystream.domain.events.registry`); this module says how that is laid out on Kafka:
one topic per family (keyed by the aggregate id the registry names), a dead-letter topic and a
receipts topic, and one consumer group per sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from polystream.bus.ports import TopicSpec
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import EVENT_TYPES, READ_AFTER, Family, Sink, families_for
from polystream.settings import KafkaSettings


class Topic(StrEnum):
    """Kafka topics: one per aggregate family, plus dead letters and sink receipts."""

    USERS = "polystream.users"
    SUBSCRIPTIONS = "polystream.subscriptions"
    SESSIONS = "polystream.sessions"
    PLAYBACK = "polystream.playback"
    RATINGS = "polystream.ratings"
    CATALOG = "polystream.catalog"
    FLAGS = "polystream.flags"
    DEADLETTER = "polystream.deadletter"
    RECEIPTS = "polystream.receipts"


#: Partitions per topic. Playback heartbeats are by far the busiest stream, so it gets the
#: most; flags change rarely. Partitions bound the parallelism of a sink (one consumer per
#: partition per group), so these are also the maximum worker counts per sink.
TOPIC_PARTITIONS: Final[Mapping[Topic, int]] = MappingProxyType(
    {
        Topic.USERS: 6,
        Topic.SUBSCRIPTIONS: 6,
        Topic.SESSIONS: 6,
        Topic.PLAYBACK: 12,
        Topic.RATINGS: 6,
        Topic.CATALOG: 6,
        Topic.FLAGS: 3,
        Topic.DEADLETTER: 3,
        Topic.RECEIPTS: 6,
    }
)

_DAY_MS: Final = 24 * 3600 * 1000

# Dead letters wait for a human; receipts only feed the audit trail.
_TOPIC_CONFIG: Final[dict[Topic, dict[str, str]]] = {
    Topic.DEADLETTER: {"retention.ms": str(30 * _DAY_MS)},
    Topic.RECEIPTS: {"retention.ms": str(7 * _DAY_MS)},
}


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic of the layout, as the admin client creates it."""
    # An explicitly set partition count applies to every topic (a small test stack, or a big
    # cluster); otherwise each topic keeps the default sized for its traffic.
    override = settings.partitions if "partitions" in settings.model_fields_set else None
    return [
        TopicSpec(topic.value, override or TOPIC_PARTITIONS[topic], _TOPIC_CONFIG.get(topic, {}))
        for topic in Topic
    ]


#: The topic of each aggregate family. One topic per family: the events of a family are
#: ordered together (per key), and each sink subscribes to the families it consumes.
FAMILY_TOPICS: Final[Mapping[Family, Topic]] = MappingProxyType(
    {
        Family.USERS: Topic.USERS,
        Family.SUBSCRIPTIONS: Topic.SUBSCRIPTIONS,
        Family.SESSIONS: Topic.SESSIONS,
        Family.PLAYBACK: Topic.PLAYBACK,
        Family.RATINGS: Topic.RATINGS,
        Family.CATALOG: Topic.CATALOG,
        Family.FLAGS: Topic.FLAGS,
    }
)


def topic_of(event_type: str) -> Topic:
    """The topic that carries ``event_type`` (a registered type)."""
    return FAMILY_TOPICS[EVENT_TYPES[event_type].family]


def topics_for(sink: Sink) -> tuple[Topic, ...]:
    """The topics a sink subscribes to. The audit also reads receipts and dead letters."""
    topics = {FAMILY_TOPICS[family] for family in families_for(sink)}
    if sink is Sink.AUDIT:
        topics |= {Topic.RECEIPTS, Topic.DEADLETTER}
    return tuple(topic for topic in Topic if topic in topics)


#: For each topic, the topics its events may need read first (`READ_AFTER`, by topic).
UPSTREAM_TOPICS: Final[Mapping[Topic, tuple[Topic, ...]]] = MappingProxyType({
    FAMILY_TOPICS[family]: tuple(FAMILY_TOPICS[f] for f in before)
    for family, before in READ_AFTER.items()
})


def primary_sink(topic: str) -> Sink | None:
    """The sink that dead-letters the invalid records of ``topic``: the first store sink (in
    `Sink` order) that consumes any of its event types."""
    consumers = {s for t in EVENT_TYPES if topic_of(t) == topic for s in EVENT_TYPES[t].consumers}
    for sink in Sink:
        if sink is not Sink.AUDIT and sink in consumers:
            return sink
    return None


#: Consumer group of each sink. One group per store is deliberate: a slow store delays only
#: its own sink, and each sink can be replayed on its own.
CONSUMER_GROUPS: Final[Mapping[Sink, str]] = MappingProxyType(
    {sink: f"polystream-{sink.value}" for sink in Sink}
)


class DeadLetterHeader(StrEnum):
    """Kafka headers on every dead-letter record (the value is the original bytes)."""

    REASON = "dlq.reason"  #: an :class:`InvalidEvent` ``code`` or ``store_rejected``
    DETAIL = "dlq.detail"  #: the human reason, never containing field values
    TOPIC = "dlq.original.topic"
    PARTITION = "dlq.original.partition"
    OFFSET = "dlq.original.offset"
    CONSUMER = "dlq.consumer"  #: the sink that gave up on it
    EVENT_TYPE = "dlq.event.type"  #: when it could be read


def dead_letter_headers(
    error: InvalidEvent | str,
    *,
    topic: str,
    partition: int,
    offset: int,
    consumer: Sink | str,
    detail: str | None = None,
) -> dict[str, bytes]:
    """Kafka headers for a dead-letter record (see :class:`DeadLetterHeader`).

    ``error`` is the :class:`InvalidEvent` that refused the record, or a reason code such
    as ``"store_rejected"`` when a store refused a valid event permanently (then ``detail``
    says why).
    """
    if isinstance(error, InvalidEvent):
        reason, text, event_type = error.code, error.reason, error.event_type
    else:
        reason, text, event_type = error, detail or error, None
    headers = {
        DeadLetterHeader.REASON.value: reason,
        # Bounded: headers count against the record size limit.
        DeadLetterHeader.DETAIL.value: text[:1000],
        DeadLetterHeader.TOPIC.value: topic,
        DeadLetterHeader.PARTITION.value: str(partition),
        DeadLetterHeader.OFFSET.value: str(offset),
        DeadLetterHeader.CONSUMER.value: str(consumer),
    }
    if event_type is not None:
        headers[DeadLetterHeader.EVENT_TYPE.value] = event_type
    return {name: value.encode() for name, value in headers.items()}


__all__ = [
    "CONSUMER_GROUPS",
    "FAMILY_TOPICS",
    "TOPIC_PARTITIONS",
    "UPSTREAM_TOPICS",
    "DeadLetterHeader",
    "Topic",
    "dead_letter_headers",
    "primary_sink",
    "topic_of",
    "topic_specs",
    "topics_for",
]
