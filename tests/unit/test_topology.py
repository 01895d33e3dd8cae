"""The Kafka topology: topics per family, partitions, consumer groups, dead-letter headers."""

from __future__ import annotations

from polystream.bus.topology import (
    CONSUMER_GROUPS,
    FAMILY_TOPICS,
    TOPIC_PARTITIONS,
    DeadLetterHeader,
    Topic,
    dead_letter_headers,
    topic_of,
    topics_for,
)
from polystream.domain.errors import UnsupportedSchemaVersion
from polystream.domain.events import EVENT_TYPES, Family, Sink


def test_every_family_and_sink_has_its_place() -> None:
    assert set(FAMILY_TOPICS) == set(Family)
    assert set(TOPIC_PARTITIONS) == set(Topic)
    assert set(CONSUMER_GROUPS) == set(Sink)
    for event_type in EVENT_TYPES:
        assert topic_of(event_type) not in (Topic.DEADLETTER, Topic.RECEIPTS)


def test_topics_per_family() -> None:
    expected = {
        "user.": Topic.USERS,
        "preferences.": Topic.USERS,
        "subscription.": Topic.SUBSCRIPTIONS,
        "payment.": Topic.SUBSCRIPTIONS,
        "session.": Topic.SESSIONS,
        "playback.": Topic.PLAYBACK,
        "rating.": Topic.RATINGS,
        "catalog.": Topic.CATALOG,
        "flag.": Topic.FLAGS,
    }
    for event_type in EVENT_TYPES:
        (topic,) = (t for prefix, t in expected.items() if event_type.startswith(prefix))
        assert topic_of(event_type) is topic, event_type


def test_topics_per_sink() -> None:
    assert set(topics_for(Sink.AUDIT)) == set(Topic)
    assert topics_for(Sink.MONGO) == (Topic.CATALOG,)
    assert topics_for(Sink.POSTGRES) == (Topic.USERS, Topic.SUBSCRIPTIONS, Topic.RATINGS)


def test_dead_letter_headers() -> None:
    error = UnsupportedSchemaVersion("v2 unsupported", event_type="rating.submitted")
    headers = dead_letter_headers(
        error, topic=Topic.RATINGS, partition=3, offset=42, consumer=Sink.POSTGRES
    )
    assert headers == {
        DeadLetterHeader.REASON: b"unsupported_version",
        DeadLetterHeader.DETAIL: b"v2 unsupported",
        DeadLetterHeader.TOPIC: b"polystream.ratings",
        DeadLetterHeader.PARTITION: b"3",
        DeadLetterHeader.OFFSET: b"42",
        DeadLetterHeader.CONSUMER: b"postgres",
        DeadLetterHeader.EVENT_TYPE: b"rating.submitted",
    }
    rejected = dead_letter_headers(
        "store_rejected", topic="t", partition=0, offset=1, consumer="mongo", detail="why"
    )
    assert rejected["dlq.reason"] == b"store_rejected" and rejected["dlq.detail"] == b"why"
