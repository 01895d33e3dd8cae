"""Sending a record to the dead-letter topic, the same way from every consumer.

The dead letter's value is the original bytes and its headers say why, where it came from and
who gave up on it (`DeadLetterHeader`). A replay or a redelivery must not dead-letter the same
record twice: when a claim name is given, the record is sent only the first time that name is
claimed (the claims live in the receipt log, for as long as the topics keep records). The names
come from the functions below, one namespace per kind of claimer, so that two consumers never
take each other's claims:

* `record_claim(rec)` — ``dlq:<topic>:<partition>:<offset>``: the one dead letter of an invalid
  record, sent by its topic's primary sink;
* `event_claim(sink, event_id)` — ``dlq:<sink>:<event id>``: a valid event a sink's store
  refused for good;
* `record_claim(rec, by=consumer)` — ``dlq-<consumer>:<topic>:<partition>:<offset>``: a record
  another consumer (the auditor) dead-letters on its own account (a malformed receipt, an item
  its index refused). The ``dlq-`` prefix cannot begin a name of the other two.

A claim store that cannot answer (Redis down) makes the batch not durable (`NotDurable`): the
loop rewinds and tries again after a backoff, so the record is neither skipped nor sent twice.
The claim is taken before the dead letter is queued, and the loop flushes it before committing;
a crash between the two loses that dead letter (see docs/reliability.md, "Open").
"""

from __future__ import annotations

from collections.abc import Callable

from polystream.bus.ports import BulkEventPublisher, Record
from polystream.bus.topology import DeadLetterHeader, Topic, dead_letter_headers
from polystream.domain.errors import InvalidEvent
from polystream.runtime.loop import NotDurable
from polystream.store_errors import TransientStoreError

#: ``claim(name)`` is True the first time ``name`` is claimed.
Claim = Callable[[str], bool]


def record_claim(rec: Record, *, by: str | None = None) -> str:
    """The claim name of ``rec``'s dead letter: the primary sink's (``by`` None), or that of
    consumer ``by`` in its own namespace."""
    where = f"{rec.topic}:{rec.partition}:{rec.offset}"
    return f"dlq:{where}" if by is None else f"dlq-{by}:{where}"


def event_claim(sink: str, event_id: object) -> str:
    """The claim name of the dead letter of an event ``sink``'s store refused for good."""
    return f"dlq:{sink}:{event_id}"


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
        if once_as is not None and self._claim is not None and not self._claimed(once_as):
            return False
        headers = dead_letter_headers(error, topic=rec.topic, partition=rec.partition,
                                      offset=rec.offset, consumer=self.consumer, detail=detail)
        if event_type is not None:
            headers.setdefault(DeadLetterHeader.EVENT_TYPE.value, event_type.encode())
        key = rec.key.decode(errors="replace") if rec.key else f"{rec.topic}:{rec.partition}"
        publisher.publish_fire(self.topic, key, rec.value or b"", headers)
        return True

    def _claimed(self, name: str) -> bool:
        assert self._claim is not None
        try:
            return self._claim(name)
        except TransientStoreError as exc:
            raise NotDurable(f"dead letter {name} not claimed: {exc}") from exc
