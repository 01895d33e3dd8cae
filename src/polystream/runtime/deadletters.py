"""Sending a record to the dead-letter topic, the same way from every consumer.

The dead letter's value is the original bytes and its headers say why, where it came from and
who gave up on it (`DeadLetterHeader`). A replay or a redelivery must not dead-letter the same
record twice: when a claim name is given, the record is sent only the first time that name is
claimed (the claims live in the receipt log, for as long as the topics keep records).
"""

from __future__ import annotations

from collections.abc import Callable

from polystream.bus.ports import BulkEventPublisher, Record
from polystream.bus.topology import DeadLetterHeader, Topic, dead_letter_headers
from polystream.domain.errors import InvalidEvent

#: ``claim(name)`` is True the first time ``name`` is claimed.
Claim = Callable[[str], bool]


class DeadLetters:
    def __init__(self, consumer: str, *, claim: Claim | None = None,
                 topic: str = Topic.DEADLETTER.value) -> None:
        self.consumer = consumer
        self.topic = topic
        self._claim = claim

    def send(self, publisher: BulkEventPublisher, rec: Record, error: InvalidEvent | str, *,
             detail: str | None = None, event_type: str | None = None,
             once_as: str | None = None) -> bool:
        """Queue ``rec`` for the dead-letter topic (acknowledged by the loop's flush before the
        offsets move). With ``once_as``, only the first time that name is claimed. True when
        it was queued."""
        if once_as is not None and self._claim is not None and not self._claim(once_as):
            return False
        headers = dead_letter_headers(error, topic=rec.topic, partition=rec.partition,
                                      offset=rec.offset, consumer=self.consumer, detail=detail)
        if event_type is not None:
            headers.setdefault(DeadLetterHeader.EVENT_TYPE.value, event_type.encode())
        key = rec.key.decode(errors="replace") if rec.key else f"{rec.topic}:{rec.partition}"
        publisher.publish_fire(self.topic, key, rec.value or b"", headers)
        return True
