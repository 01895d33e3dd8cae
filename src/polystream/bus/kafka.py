"""The bus ports on Kafka (confluent-kafka / librdkafka).

Delivery semantics (DESIGN.md §4):

* Publisher: idempotent (``enable.idempotence``, ``acks=all``), so librdkafka's internal retries
  never duplicate or reorder a partition. A failed delivery is never dropped silently: the future
  fails (``publish``) or the failure counter grows (``publish_fire``), and ``flush``/``close``
  raise ``PublishError`` if anything failed since the previous flush.
* Consumer: ``enable.auto.commit=false``; offsets move only when the worker calls ``commit`` after
  its batch is durable. At-least-once + idempotent effects.

How a worker must drive the consumer (and why rebalances lose nothing)::

    while running:
        records = consumer.poll_batch(500, 1.0)   # rebalance callbacks run only in here
        try:
            apply(records)                        # idempotent effects
        except TransientStoreError:
            consumer.seek_to_committed()          # the batch will come again
            continue
        consumer.commit(records)                  # synchronous

Rebalance callbacks (``on_assign``/``on_revoke``) are served only inside ``poll_batch``, on the
worker's own thread, so a revocation can never interrupt a batch: by the time it happens the
previous batch was either committed or deliberately left uncommitted. Anything uncommitted is
redelivered to the partition's next owner, which starts at the committed offset. ``on_revoke``
is for dropping per-partition state (caches, buffers), not for committing. ``commit`` ignores
records of partitions this member no longer owns, so a late commit cannot move the new owner's
offset. A ``BusError`` from ``commit`` means "not committed": log it and keep polling; the records
come back (here or at the new owner).

Assignment strategy: ``cooperative-sticky``. Adding or removing a sink worker moves only the
partitions that must move; every other worker keeps consuming and committing during the
rebalance, and ``on_revoke`` receives exactly the partitions that left. The eager ``range``
strategy revokes every partition of every member on each rebalance (stop-the-world, and all
prefetched records are thrown away). The broker-side KIP-848 protocol (``group.protocol=consumer``)
also works through ``extra``, but its reaction time is governed by the broker's heartbeat interval
(5 s by default) rather than ours.

A worker must call ``poll_batch`` at least every ``max.poll.interval.ms`` (5 min) — also while its
store is down and it is pausing — or the broker considers it dead and moves its partitions.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from types import MappingProxyType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from polystream.bus.partitioner import partition_for
from polystream.bus.ports import (
    BusError,
    Delivered,
    PartitionsCallback,
    ProgressMark,
    PublishError,
    PublisherStats,
    Record,
)
from polystream.settings import KafkaSettings

log = logging.getLogger(__name__)

# Measured on the dev box with 200-byte JSON-ish values (see the bus report): lz4 produced
# faster than zstd at a similar ratio for small messages, and costs the broker less CPU.
COMPRESSION = "lz4"

_EMPTY_HEADERS: Mapping[str, bytes] = MappingProxyType({})

# Errors after which a commit is worth retrying: the coordinator is moving or a rebalance is in
# flight, and both settle within a few hundred milliseconds.
_RETRIABLE_COMMIT = frozenset({
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._WAIT_COORD,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
})


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


_LAZY_LOCK = threading.Lock()
_SETTLED = frozenset({"CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED"})


class _DeliveryFuture(Future[Delivered]):
    """A `Future` whose Condition and lists are created only if someone waits on it before it
    resolves.

    A plain Future owns ~10 GC-tracked objects. Tens of thousands of them sit in librdkafka's queue
    at a time, survive into the oldest generation, and trigger full collections that walk all of
    them again and again: measured here, that cut the future path from ~80-130k to ~45k msg/s. Most
    futures resolve before anybody looks at them, so `set_result` can skip the Condition entirely.
    Relies on `concurrent.futures.Future`'s private attribute names (stable since 3.8; pinned 3.11).
    """

    def __init__(self) -> None:  # deliberately not Future.__init__ (see above)
        self._state = "PENDING"
        self._result: Delivered | None = None
        self._exception: BaseException | None = None
        self._parts: tuple[threading.Condition, list[Any], list[Any]] | None = None

    def _materialise(self) -> tuple[threading.Condition, list[Any], list[Any]]:
        # Under the same lock as the fast path below, so a waiter either sees the result or
        # is notified through the Condition it created.
        with _LAZY_LOCK:
            if self._parts is None:
                self._parts = (threading.Condition(), [], [])
            return self._parts

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        return (self._parts or self._materialise())[0]

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        return (self._parts or self._materialise())[1]

    @property
    def _done_callbacks(self) -> list[Any]:
        return (self._parts or self._materialise())[2]

    def set_result(self, result: Delivered) -> None:
        if self._parts is None:
            with _LAZY_LOCK:
                if self._parts is None:
                    if self._state in _SETTLED:
                        raise InvalidStateError(self._state)  # not repr(): it takes _LAZY_LOCK
                    self._result = result
                    self._state = "FINISHED"
                    return
        super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        if self._parts is None:
            with _LAZY_LOCK:
                if self._parts is None:
                    if self._state in _SETTLED:
                        raise InvalidStateError(self._state)  # not repr(): it takes _LAZY_LOCK
                    self._exception = exception
                    self._state = "FINISHED"
                    return
        super().set_exception(exception)


def _describe(err: KafkaError) -> str:
    return f"{err.name()}: {err.str()}"


class KafkaEventPublisher:
    """`EventPublisher` on one librdkafka producer; safe to share between threads.

    A daemon thread polls the producer so futures resolve and counters move without the caller
    polling. Two paths:

    * ``publish`` returns a ``Future[Delivered]`` (for the API, which must know the offset).
    * ``publish_fire`` returns nothing and only counts acks/failures (for bulk producers such as
      the simulator: a Future and a closure per message cost more than the produce call itself).
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str,
                 extra: Mapping[str, Any] | None = None,
                 queue_full_timeout_s: float = 5.0) -> None:
        conf = producer_config(settings, client_id, extra)
        conf["error_cb"] = self._on_error
        # The default delivery callback serves publish_fire; publish passes its own per message.
        conf["on_delivery"] = self._on_fire_delivery
        self._producer = Producer(conf)
        self._queue_full_timeout_s = queue_full_timeout_s
        self._lock = threading.Lock()
        self._acked = 0
        self._failed = 0
        self._first_error: str | None = None
        # Failures not yet raised by flush(): each one is reported once, so one bad message does
        # not make every later flush of a long-lived publisher fail.
        self._unreported = 0
        self._unreported_first: str | None = None
        self._fatal: str | None = None
        self._closed = False
        self._released = False  # the librdkafka handle is gone (end of close)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name=f"kafka-poll-{client_id}",
                                        daemon=True)
        self._poller.start()

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Future[Delivered]:
        fut = _DeliveryFuture()
        self._produce(topic, key, value, headers, functools.partial(self._on_future_delivery, fut))
        return fut

    def publish_fire(self, topic: str, key: str, value: bytes,
                     headers: Mapping[str, bytes] | None = None) -> None:
        if self._closed or self._fatal is not None:
            self._raise_unusable()
        if headers is not None and type(headers) is not dict:
            headers = dict(headers)  # librdkafka's binding takes a dict or a list, not a Mapping
        try:
            # The hot path: nothing but the C call when the queue has room.
            self._producer.produce(topic, value, key, headers=headers)  # type: ignore[arg-type]
        except BufferError:
            self._produce_when_room(topic, key, value, headers, None)
        except KafkaException as exc:
            raise PublishError(f"publish to {topic} refused: {_describe(exc.args[0])}") from exc

    def _produce(self, topic: str, key: str, value: bytes, headers: Mapping[str, bytes] | None,
                 callback: Any) -> None:
        if self._closed or self._fatal is not None:
            self._raise_unusable()
        if headers is not None and type(headers) is not dict:
            headers = dict(headers)
        try:
            self._producer.produce(topic, value, key, headers=headers,  # type: ignore[arg-type]
                                   on_delivery=callback)
        except BufferError:
            self._produce_when_room(topic, key, value, headers, callback)
        except KafkaException as exc:
            raise PublishError(f"publish to {topic} refused: {_describe(exc.args[0])}") from exc

    def _produce_when_room(self, topic: str, key: str, value: bytes,
                           headers: Mapping[str, bytes] | None, callback: Any) -> None:
        # The local queue is full: acks free room only once their reports are served, so help the
        # poll thread serve them, and give up after a bounded wait (the broker is slow or gone).
        deadline = time.monotonic() + self._queue_full_timeout_s
        while True:
            self._producer.poll(0.01)
            try:
                if callback is None:
                    self._producer.produce(topic, value, key,
                                           headers=headers)  # type: ignore[arg-type]
                else:
                    self._producer.produce(topic, value, key,
                                           headers=headers,  # type: ignore[arg-type]
                                           on_delivery=callback)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    raise PublishError(
                        f"publish to {topic} refused: local queue still full after "
                        f"{self._queue_full_timeout_s:g}s ({len(self._producer)} in flight)"
                    ) from None
            except KafkaException as exc:
                raise PublishError(
                    f"publish to {topic} refused: {_describe(exc.args[0])}") from exc

    def _raise_unusable(self) -> None:
        if self._fatal is not None:
            raise PublishError(f"producer failed fatally: {self._fatal}")
        raise PublishError("publisher is closed")

    # -- delivery reports (poll thread, or the caller inside flush) -------------------------------

    def _on_fire_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            with self._lock:
                self._acked += 1
        else:
            self._count_failure(err, msg)

    def _on_future_delivery(self, fut: Future[Delivered], err: KafkaError | None,
                            msg: Any) -> None:
        if err is None:
            with self._lock:
                self._acked += 1
            result = Delivered(msg.topic(), msg.partition(), msg.offset())
            # try/except, not contextlib.suppress: this runs once per message.
            try:  # noqa: SIM105
                fut.set_result(result)
            except InvalidStateError:  # the caller cancelled it; the ack stands anyway
                pass
        else:
            exc = self._count_failure(err, msg)
            try:  # noqa: SIM105
                fut.set_exception(exc)
            except InvalidStateError:
                pass

    def _count_failure(self, err: KafkaError, msg: Any) -> PublishError:
        text = f"delivery to {msg.topic()} failed: {_describe(err)}"
        with self._lock:
            self._failed += 1
            self._unreported += 1
            if self._first_error is None:
                self._first_error = text
            if self._unreported_first is None:
                self._unreported_first = text
        return PublishError(text)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            # With idempotence a fatal error means ordering/exactly-once can no longer be
            # guaranteed; librdkafka fails everything queued and this producer must be replaced.
            self._fatal = _describe(err)
            log.error("kafka producer fatal error: %s", self._fatal)
        else:
            log.warning("kafka producer error (librdkafka retries): %s", _describe(err))

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # a callback bug must not stop every future from resolving
                log.exception("kafka producer poll failed")

    # -- draining ---------------------------------------------------------------------------------

    def stats(self) -> PublisherStats:
        """Cumulative (acked, failed, first_error) over this publisher's life, both paths."""
        with self._lock:
            return PublisherStats(self._acked, self._failed, self._first_error)

    def in_flight(self) -> int:
        """Messages queued or awaiting their delivery report."""
        return 0 if self._released else len(self._producer)

    def flush(self, timeout_s: float = 30.0) -> None:
        if self._released:
            return  # close() flushed and reported everything; nothing can be queued since
        remaining = self._producer.flush(timeout_s)
        with self._lock:
            failed, first = self._unreported, self._unreported_first
            self._unreported, self._unreported_first = 0, None
        problems = []
        if failed:
            problems.append(f"{failed} message(s) not delivered (first: {first})")
        if remaining:
            problems.append(f"{remaining} message(s) still queued after {timeout_s:g}s")
        if problems:
            raise PublishError("; ".join(problems))

    def close(self, timeout_s: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout_s)
        finally:
            self._stop.set()
            self._poller.join()
            # Whatever is still queued after a failed flush is abandoned here, knowingly: the
            # exception above already told the caller.
            self._producer.purge()
            self._producer.poll(0)
            self._producer.close()
            self._released = True

    def __enter__(self) -> KafkaEventPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class KafkaEventConsumer:
    """`EventConsumer`: one member of a consumer group. Use from one thread (the worker's)."""

    def __init__(self, settings: KafkaSettings, *, group_id: str, topics: list[str],
                 client_id: str, on_assign: PartitionsCallback | None = None,
                 on_revoke: PartitionsCallback | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        conf = consumer_config(settings, group_id, client_id, extra)
        conf["error_cb"] = self._on_error
        self._timeout_s = settings.request_timeout_s
        self._group_id = group_id
        self._on_assign_hook = on_assign
        self._on_revoke_hook = on_revoke
        self._last_logged: dict[int, float] = {}
        self._fatal: str | None = None
        self._closed = False
        self._partitions: dict[str, int] = {}
        self._consumer = Consumer(conf)
        # Lost partitions (session expired) go to on_revoke too: either way the worker no longer
        # owns them and must drop their state; a commit for them would be ignored.
        self._consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._revoked)

    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._on_assign_hook is not None and partitions:
            self._on_assign_hook([(tp.topic, tp.partition) for tp in partitions])

    def _revoked(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._on_revoke_hook is not None and partitions:
            self._on_revoke_hook([(tp.topic, tp.partition) for tp in partitions])

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = _describe(err)
            log.error("kafka consumer %s fatal error: %s", self._group_id, self._fatal)
        else:
            self._log_limited(err)

    def _log_limited(self, err: KafkaError) -> None:
        # Transient errors (broker restart, topic not created yet) repeat every poll; one line
        # per error kind every 10 s says the same thing.
        now = time.monotonic()
        code = err.code()
        if now - self._last_logged.get(code, -1e9) >= 10.0:
            self._last_logged[code] = now
            log.warning("kafka consumer %s: %s (retrying)", self._group_id, _describe(err))

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._fatal is not None:
            raise BusError(f"consumer {self._group_id} failed fatally: {self._fatal}")
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        except RuntimeError as exc:  # closed consumer
            raise BusError(f"consumer {self._group_id}: {exc}") from exc
        except KafkaException as exc:
            raise BusError(f"consume failed for {self._group_id}: "
                           f"{_describe(exc.args[0])}") from exc
        records: list[Record] = []
        append = records.append
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise BusError(f"consumer {self._group_id} failed: {_describe(err)}")
                self._log_limited(err)
                continue
            headers = msg.headers()
            ts_type, ts = msg.timestamp()
            # A message without error always has topic/partition/offset; values of headers are
            # bytes (None only if a producer set None, which ours never do).
            append(Record(
                msg.topic(), msg.partition(), msg.offset(),  # type: ignore[arg-type]
                msg.key(), msg.value(),
                dict(headers) if headers else _EMPTY_HEADERS,  # type: ignore[arg-type]
                ts if ts_type != TIMESTAMP_NOT_AVAILABLE else 0,
            ))
        return records

    def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        highest: dict[tuple[str, int], int] = {}
        for rec in records:
            tp = (rec.topic, rec.partition)
            if rec.offset > highest.get(tp, -1):
                highest[tp] = rec.offset
        owned = set(self.assignment())
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items() if (t, p) in owned]
        if len(offsets) < len(highest):
            log.info("consumer %s: not committing %d partition(s) it no longer owns "
                     "(their records go to the new owner)", self._group_id,
                     len(highest) - len(offsets))
        if offsets:
            self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                result = self._consumer.commit(offsets=offsets, asynchronous=False)
                errors = [tp.error for tp in result or () if tp.error is not None]
            except RuntimeError as exc:
                raise BusError(f"commit for {self._group_id}: {exc}") from exc
            except KafkaException as exc:
                errors = [exc.args[0]]
            if not errors:
                return
            err = errors[0]
            if err.code() in _RETRIABLE_COMMIT and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise BusError(f"commit for {self._group_id} failed: {_describe(err)}")

    def seek_to_committed(self) -> None:
        parts = self._consumer.assignment()
        if not parts:
            return
        try:
            committed = self._consumer.committed(parts, timeout=self._timeout_s)
        except KafkaException as exc:
            raise BusError(f"reading committed offsets of {self._group_id} failed: "
                           f"{_describe(exc.args[0])}") from exc
        for tp in committed:
            # No committed offset: start where auto.offset.reset=earliest would.
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            try:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError._STATE:
                    # Assigned but not fetching yet: it will start at the committed offset anyway,
                    # and nothing can have been delivered from it.
                    continue
                raise BusError(f"seek {tp.topic}[{tp.partition}] for {self._group_id} failed: "
                               f"{_describe(exc.args[0])}") from exc

    def seek_to(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Deliver each partition again from the given offset (records polled but not handed
        on, e.g. while their data keys could not be read)."""
        for (topic, partition), offset in offsets.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                raise BusError(f"seek {topic}[{partition}] for {self._group_id} failed: "
                               f"{_describe(exc.args[0])}") from exc

    def assignment(self) -> list[tuple[str, int]]:
        try:
            return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        except RuntimeError as exc:
            raise BusError(f"consumer {self._group_id}: {exc}") from exc

    def partition_of(self, topic: str, key: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            try:
                meta = self._consumer.list_topics(topic, timeout=self._timeout_s)
            except (KafkaException, RuntimeError) as exc:
                raise BusError(f"metadata of {topic} for {self._group_id}: {exc}") from exc
            found = meta.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                raise BusError(f"topic {topic} has no partitions (yet)")
            count = self._partitions[topic] = len(found.partitions)
        return partition_for(key.encode(), count)

    def processed_before(self, marks: Sequence[ProgressMark]) -> list[bool]:
        """Kafka's time index answers where each mark's time starts in its partition
        (``offsets_for_times``); the group coordinator answers how far the group committed."""
        if not marks:
            return []
        # One ListOffsets request cannot ask twice for a partition: one round per repeat.
        rounds: list[list[ProgressMark]] = []
        for mark in marks:
            for r in rounds:
                if all((m.topic, m.partition) != (mark.topic, mark.partition) for m in r):
                    r.append(mark)
                    break
            else:
                rounds.append([mark])
        answers: dict[ProgressMark, bool] = {}
        watermarks: dict[tuple[str, int], tuple[int, int]] = {}
        try:
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in self._consumer.committed(
                    [TopicPartition(t, p) for t, p in {(m.topic, m.partition) for m in marks}],
                    timeout=self._timeout_s)}
            for r in rounds:
                found = self._consumer.offsets_for_times(
                    [TopicPartition(m.topic, m.partition, m.timestamp_ms) for m in r],
                    timeout=self._timeout_s)
                for mark, tp in zip(r, found, strict=True):
                    if tp.error is not None:
                        raise BusError(f"offsets of {mark.topic}[{mark.partition}] by time: "
                                       f"{_describe(tp.error)}")
                    done = committed[(mark.topic, mark.partition)]
                    first_at = tp.offset
                    if done < 0 or first_at < 0:
                        key = (mark.topic, mark.partition)
                        if key not in watermarks:  # a broker round trip each: once per call
                            watermarks[key] = self._consumer.get_watermark_offsets(
                                TopicPartition(mark.topic, mark.partition),
                                timeout=self._timeout_s, cached=False)
                        low, high = watermarks[key]
                        # Nothing committed yet: the group would start at the log's start.
                        done = done if done >= 0 else low
                        # No record at or after the time: every record is before it.
                        first_at = first_at if first_at >= 0 else high
                    answers[mark] = done >= first_at
        except KafkaException as exc:
            raise BusError(f"progress of {self._group_id}: {_describe(exc.args[0])}") from exc
        except RuntimeError as exc:  # closed consumer
            raise BusError(f"progress of {self._group_id}: {exc}") from exc
        return [answers[m] for m in marks]

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        owned = set(self.assignment())
        tps = [TopicPartition(t, p) for t, p in partitions if (t, p) in owned]
        if tps:
            try:
                self._consumer.pause(tps)
            except (KafkaException, RuntimeError) as exc:
                raise BusError(f"pause for {self._group_id}: {exc}") from exc

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        owned = set(self.assignment())
        tps = [TopicPartition(t, p) for t, p in partitions if (t, p) in owned]
        if tps:
            try:
                self._consumer.resume(tps)
            except (KafkaException, RuntimeError) as exc:
                raise BusError(f"resume for {self._group_id}: {exc}") from exc

    def close(self) -> None:
        """Leave the group (on_revoke runs for what this member owned) so the partitions move at
        once instead of after the session timeout."""
        if self._closed:
            return
        self._closed = True
        self._consumer.close()

    def __enter__(self) -> KafkaEventConsumer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
