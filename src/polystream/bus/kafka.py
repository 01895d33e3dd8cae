"""The bus ports on Kafka (confluent-kafka / librdkafka): the publisher here, the consumer in
:mod:`.kafka_consumer` (re-exported), the client settings in :mod:`.kafka_config`.

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
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from polystream.bus.kafka_config import consumer_config, describe, producer_config
from polystream.bus.kafka_consumer import KafkaEventConsumer
from polystream.bus.kafka_delivery import DeliveryFuture
from polystream.bus.ports import Delivered, PublishError, PublisherStats
from polystream.bus.tally import DeliveryTally
from polystream.settings import KafkaSettings

log = logging.getLogger(__name__)


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
        self._tally = DeliveryTally()
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
        fut = DeliveryFuture()
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
            raise PublishError(f"publish to {topic} refused: {describe(exc.args[0])}") from exc

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
            raise PublishError(f"publish to {topic} refused: {describe(exc.args[0])}") from exc

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
                    f"publish to {topic} refused: {describe(exc.args[0])}") from exc

    def _raise_unusable(self) -> None:
        if self._fatal is not None:
            raise PublishError(f"producer failed fatally: {self._fatal}")
        raise PublishError("publisher is closed")

    # -- delivery reports (poll thread, or the caller inside flush) -------------------------------

    def _on_fire_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self._tally.acked()
        else:
            self._count_failure(err, msg)

    def _on_future_delivery(self, fut: Future[Delivered], err: KafkaError | None,
                            msg: Any) -> None:
        if err is None:
            self._tally.acked()
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
        text = f"delivery to {msg.topic()} failed: {describe(err)}"
        self._tally.failed(text)
        return PublishError(text)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            # With idempotence a fatal error means ordering/exactly-once can no longer be
            # guaranteed; librdkafka fails everything queued and this producer must be replaced.
            self._fatal = describe(err)
            log.error("kafka producer fatal error: %s", self._fatal)
        else:
            log.warning("kafka producer error (librdkafka retries): %s", describe(err))

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # a callback bug must not stop every future from resolving
                log.exception("kafka producer poll failed")

    # -- draining ---------------------------------------------------------------------------------

    def stats(self) -> PublisherStats:
        """Cumulative (acked, failed, first_error) over this publisher's life, both paths."""
        return self._tally.stats()

    def in_flight(self) -> int:
        """Messages queued or awaiting their delivery report."""
        return 0 if self._released else len(self._producer)

    def flush(self, timeout_s: float = 30.0) -> None:
        if self._released:
            return  # close() flushed and reported everything; nothing can be queued since
        remaining = self._producer.flush(timeout_s)
        problems = []
        if undelivered := self._tally.take_unreported():
            problems.append(undelivered)
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


__all__ = ["KafkaEventConsumer", "KafkaEventPublisher", "consumer_config", "producer_config"]
