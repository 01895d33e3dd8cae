"""The bus's consumer port on Kafka: manual commits, cooperative rebalances served only inside
``poll_batch`` (the rules a worker must follow are in :mod:`polystream.bus.kafka`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from polystream.bus.kafka_config import consumer_config, describe
from polystream.bus.partitioner import partition_for
from polystream.bus.ports import BusError, PartitionsCallback, ProgressMark, Record
from polystream.settings import KafkaSettings

# The consumer logged as part of polystream.bus.kafka before the module was split; log filters
# and dashboards keep that name.
log = logging.getLogger("polystream.bus.kafka")

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
            self._fatal = describe(err)
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
            log.warning("kafka consumer %s: %s (retrying)", self._group_id, describe(err))

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._fatal is not None:
            raise BusError(f"consumer {self._group_id} failed fatally: {self._fatal}")
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        except RuntimeError as exc:  # closed consumer
            raise BusError(f"consumer {self._group_id}: {exc}") from exc
        except KafkaException as exc:
            raise BusError(f"consume failed for {self._group_id}: "
                           f"{describe(exc.args[0])}") from exc
        records: list[Record] = []
        append = records.append
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise BusError(f"consumer {self._group_id} failed: {describe(err)}")
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
            raise BusError(f"commit for {self._group_id} failed: {describe(err)}")

    def seek_to_committed(self) -> None:
        parts = self._consumer.assignment()
        if not parts:
            return
        try:
            committed = self._consumer.committed(parts, timeout=self._timeout_s)
        except KafkaException as exc:
            raise BusError(f"reading committed offsets of {self._group_id} failed: "
                           f"{describe(exc.args[0])}") from exc
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
                               f"{describe(exc.args[0])}") from exc

    def seek_to(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Deliver each partition again from the given offset (records polled but not handed
        on, e.g. while their data keys could not be read)."""
        for (topic, partition), offset in offsets.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                raise BusError(f"seek {topic}[{partition}] for {self._group_id} failed: "
                               f"{describe(exc.args[0])}") from exc

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
                                       f"{describe(tp.error)}")
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
            raise BusError(f"progress of {self._group_id}: {describe(exc.args[0])}") from exc
        except RuntimeError as exc:  # closed consumer
            raise BusError(f"progress of {self._group_id}: {exc}") from exc
        return [answers[m] for m in marks]

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        self._on_owned(partitions, self._consumer.pause, "pause")

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        self._on_owned(partitions, self._consumer.resume, "resume")

    def _on_owned(self, partitions: Sequence[tuple[str, int]],
                  action: Callable[[list[TopicPartition]], None], name: str) -> None:
        """``action`` on those of ``partitions`` this member still owns (a rebalance may
        have taken the others since the caller looked)."""
        owned = set(self.assignment())
        tps = [TopicPartition(t, p) for t, p in partitions if (t, p) in owned]
        if tps:
            try:
                action(tps)
            except (KafkaException, RuntimeError) as exc:
                raise BusError(f"{name} for {self._group_id}: {exc}") from exc

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


__all__ = ["KafkaEventConsumer"]
