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

A claim is a lease until confirmed. It is taken before the dead letter is queued; once Kafka
acknowledged the dead letter (the loop's flush, before the commit) the claim is confirmed and
stays taken for the retention. A dead letter that Kafka did not take after all (its delivery
failed for good, or the publisher refused it) gives its claim back (``release``), so the
redelivery of its batch sends it: the failed delivery makes that batch's flush fail, and the
loop rewinds. A process that dies between a claim and its confirmation leaves a lease that
nobody confirms: the next consumer of those records waits (rewinds with backoff) while the
lease runs, then takes the claim and sends the dead letter. Nothing is lost that way; a process
that dies after Kafka acknowledged the dead letter but before the confirmation makes it go out
twice (see docs/reliability.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from polystream.bus.ports import BulkEventPublisher, Delivered, PublishError, Record
from polystream.bus.topology import DeadLetterHeader, Topic, dead_letter_headers
from polystream.domain.errors import InvalidEvent
from polystream.runtime.loop import NotDurable
from polystream.store_errors import TransientStoreError

log = logging.getLogger(__name__)

#: ``claim(name)`` is True the first time ``name`` is claimed.
Claim = Callable[[str], bool]
#: ``confirm(names)``: their effects happened, the claims stay taken.
Confirm = Callable[[Sequence[str]], None]
#: ``release(name)`` forgets a claim, so the next ``claim(name)`` is True again.
Release = Callable[[str], None]


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
                 release: Release | None = None, confirm: Confirm | None = None,
                 topic: str = Topic.DEADLETTER.value) -> None:
        self.consumer = consumer
        self.topic = topic
        self._claim = claim
        self._release = release
        self._confirm = confirm
        # Claimed dead letters whose delivery is not known to have succeeded yet.
        self._sent: list[tuple[str, Future[Delivered]]] = []
        # Claims to give back (their dead letter never reached Kafka), oldest first.
        self._owed: list[str] = []
        # Claims of dead letters Kafka acknowledged, to confirm.
        self._delivered: list[str] = []

    def send(self, publisher: BulkEventPublisher, rec: Record, error: InvalidEvent | str, *,
             detail: str | None = None, event_type: str | None = None,
             once_as: str | None = None) -> bool:
        """Queue ``rec`` for the dead-letter topic (acknowledged by the loop's flush before the
        offsets move). With ``once_as``, only the first time that name is claimed. True when
        it was queued."""
        claimed = once_as is not None and self._claim is not None
        if claimed:
            assert once_as is not None
            self.settle_claims()
            if once_as in self._delivered:
                return False  # ours, acknowledged by Kafka; its confirmation is still owed
            if any(name == once_as for name, _ in self._sent):
                # Ours and still queued: it may yet fail, and then this record must send it.
                raise NotDurable(f"dead letter {once_as} still being delivered")
            if not self._claimed(once_as):
                return False
        headers = dead_letter_headers(error, topic=rec.topic, partition=rec.partition,
                                      offset=rec.offset, consumer=self.consumer, detail=detail)
        if event_type is not None:
            headers.setdefault(DeadLetterHeader.EVENT_TYPE.value, event_type.encode())
        key = rec.key.decode(errors="replace") if rec.key else f"{rec.topic}:{rec.partition}"
        if not claimed or self._release is None:
            publisher.publish_fire(self.topic, key, rec.value or b"", headers)
            return True
        assert once_as is not None
        # A future per claimed dead letter (they are rare): its claim goes back if it fails.
        try:
            delivery = publisher.publish(self.topic, key, rec.value or b"", headers)
        except PublishError:
            self._owed.append(once_as)
            raise
        self._sent.append((once_as, delivery))
        return True

    def settle_claims(self) -> None:
        """Confirm the claims of dead letters Kafka acknowledged and give back those whose
        delivery failed; raises `NotDurable` when the claim store cannot answer (they stay
        owed). The handlers call it after the loop's flush and when the loop rewinds; `send`
        calls it before each claim."""
        undecided: list[tuple[str, Future[Delivered]]] = []
        for name, delivery in self._sent:
            if not delivery.done():
                undecided.append((name, delivery))  # still queued: it may yet be delivered
            elif delivery.exception() is not None:
                self._owed.append(name)
            else:
                self._delivered.append(name)
        self._sent = undecided
        if self._delivered and self._confirm is not None:
            try:
                self._confirm(self._delivered)
            except TransientStoreError as exc:
                raise NotDurable(f"{len(self._delivered)} dead-letter claim(s) not confirmed: "
                                 f"{exc}") from exc
            self._delivered = []
        release = self._release
        while self._owed and release is not None:
            name = self._owed[0]
            try:
                release(name)
            except TransientStoreError as exc:
                raise NotDurable(f"dead-letter claim {name} not given back: {exc}") from exc
            self._owed.pop(0)

    def rewound(self) -> None:
        """The batch comes again: give back what can be given back now (the rest before the
        next claim)."""
        try:
            self.settle_claims()
        except NotDurable as exc:
            log.warning("%s: %d dead-letter claim(s) to give back and %d to confirm later: "
                        "%s", self.consumer, len(self._owed), len(self._delivered), exc)

    def _claimed(self, name: str) -> bool:
        assert self._claim is not None
        try:
            return self._claim(name)
        except TransientStoreError as exc:
            raise NotDurable(f"dead letter {name} not claimed: {exc}") from exc
