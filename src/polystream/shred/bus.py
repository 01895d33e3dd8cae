"""Crypto-shredding at the bus boundary: publishers seal, consumers open, caches in front of
the key store.

Every producer's publisher is wrapped in :class:`ShreddingPublisher` and every consumer in
:class:`ShreddingConsumer` (``polystream.shred.wrap_*``), so the codec, the sinks' rules, the
auditor and ``verify`` keep seeing plain events. Cost (``bench/b_shred.py``, figures in
docs/operations.md): a producer parses and re-dumps each event that has personal fields and
seals each field; a consumer opens the sealed fields in the record bytes (one AES-GCM
operation each, no JSON parse); records without a sealed field cost one substring test.
Key lookups are cached (LRU, ``privacy.key_cache_size`` users, ``privacy.key_cache_ttl_s``)
and a consumer fetches the keys its batch misses in one statement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Protocol

from polystream.bus.ports import (
    BulkEventPublisher,
    BusError,
    Delivered,
    EventConsumer,
    ProgressMark,
    PublishError,
    PublisherStats,
    Record,
)
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import EVENT_TYPES, decode, peek_type, personal_paths
from polystream.shred.fields import open_sealed, seal, sealed_for
from polystream.shred.keys import KeyStore, KeyStoreError

log = logging.getLogger(__name__)

TP = tuple[str, int]
_ERASED_TYPE = "user.erased"
_ERASED_MARK = b'"user.erased"'


class KeyCache:
    """A bounded LRU of data keys in front of a :class:`KeyStore`, shared by threads.

    A destroyed key (None) is cached for good: erasure is final. A live key is kept at most
    ``ttl_s``, so that a process that never reads the user's erasure itself (a sink that does
    not read the users topic) stops opening their fields within that time."""

    def __init__(self, store: KeyStore, *, size: int = 100_000, ttl_s: float = 300.0) -> None:
        self.store = store
        self._size = size
        self._ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[bytes | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._last_unknown_warning = -1e9

    def _cached(self, users: Collection[str]) -> tuple[dict[str, bytes | None], list[str]]:
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        missing: list[str] = []
        with self._lock:
            for user in users:
                entry = self._entries.get(user)
                if entry is not None and (entry[0] is None or entry[1] > now):
                    self._entries.move_to_end(user)
                    found[user] = entry[0]
                else:
                    missing.append(user)
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def _remember(self, keys: Mapping[str, bytes | None]) -> None:
        expires = time.monotonic() + self._ttl_s
        with self._lock:
            for user, key in keys.items():
                self._entries[user] = (key, expires)
                self._entries.move_to_end(user)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def has(self, user: str) -> bool:
        """True when :meth:`for_sealing` of ``user`` would answer from the cache now."""
        with self._lock:
            entry = self._entries.get(user)
            return entry is not None and (entry[0] is None or entry[1] > time.monotonic())

    def for_sealing(self, user: str) -> bytes | None:
        """The user's key, created on first use; None once they are erased."""
        found, missing = self._cached((user,))
        if missing:
            found = self.store.issue(missing)
            self._remember(found)
        return found.get(user)

    def for_opening(self, users: Collection[str]) -> dict[str, bytes | None]:
        """The keys of ``users``, those not cached fetched in one round trip; a user the
        store has no row for is left out (and asked again next time)."""
        found, missing = self._cached(set(users))
        if missing:
            fetched = self.store.fetch(missing)
            self._remember(fetched)
            found.update(fetched)
        return found

    def warn_unknown(self, users: Collection[str]) -> None:
        """Log (at most every 10 s) that sealed fields of ``users`` have no key here."""
        now = time.monotonic()
        if now - self._last_unknown_warning < 10.0:
            return
        self._last_unknown_warning = now
        where = getattr(self.store, "database", None)
        log.error("sealed personal fields of %d user(s) have no data key%s (first: %s): "
                  "their records are dead-lettered; every producer and consumer reading "
                  "these topics must use the same privacy.keys_database", len(users),
                  f" in database {where!r}" if where else "", sorted(users)[0])

    def forget(self, users: Collection[str]) -> None:
        with self._lock:
            for user in users:
                self._entries.pop(user, None)

    def erase(self, users: Collection[str]) -> None:
        self.store.erase(users)
        self._remember(dict.fromkeys(users))

    def close(self) -> None:
        self.store.close()


def open_values(values: Sequence[bytes], keys: KeyCache) -> list[bytes]:
    """``values`` with their sealed fields opened (erased values where the key is gone), in
    one key lookup. Raises :class:`KeyStoreError` when the keys cannot be read now."""
    sealed = {i: found for i, value in enumerate(values) if (found := sealed_for(value))}
    if not sealed:
        return list(values)
    found_keys = keys.for_opening({user for _raw, user in sealed.values()})
    out = list(values)
    unknown: set[str] = set()
    for i, (raw, user) in sealed.items():
        if user not in found_keys:
            unknown.add(user)
        out[i] = open_sealed(raw, user, found_keys.get(user), unknown=user not in found_keys)
    if unknown:
        keys.warn_unknown(unknown)
    return out


class ShreddingPublisher:
    """A publisher that seals the personal fields of what it publishes (see module doc)."""

    def __init__(self, inner: BulkEventPublisher, keys: KeyCache) -> None:
        self.inner = inner
        self.keys = keys

    def _sealed(self, value: bytes) -> bytes:
        try:
            return seal(value, self.keys.for_sealing)
        except KeyStoreError as exc:
            # Not published in clear, not published at all: the caller reports a failure.
            raise PublishError(f"personal fields not sealed: {exc}") from exc

    def ready(self, event_type: str, user: str) -> bool:
        """True when publishing an event of ``event_type`` keyed by ``user`` asks the key
        store nothing: no personal field, or the user's key (or its absence) cached."""
        return (event_type not in EVENT_TYPES or not personal_paths(event_type)
                or self.keys.has(user))

    def prepare(self, user: str) -> None:
        """Fetch, or create, ``user``'s key into the cache: the blocking part of
        :meth:`publish`, for a caller that runs it off its event loop (the API). Raises
        :class:`PublishError` when the key store does not answer."""
        try:
            self.keys.for_sealing(user)
        except KeyStoreError as exc:
            raise PublishError(f"personal fields not sealed: {exc}") from exc

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Future[Delivered]:
        return self.inner.publish(topic, key, self._sealed(value), headers)

    def publish_fire(self, topic: str, key: str, value: bytes,
                     headers: Mapping[str, bytes] | None = None) -> None:
        self.inner.publish_fire(topic, key, self._sealed(value), headers)

    def flush(self, timeout_s: float = 30.0) -> None:
        self.inner.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        try:
            self.inner.close(timeout_s)
        finally:
            self.keys.close()

    def stats(self) -> PublisherStats:
        return self.inner.stats()

    def __getattr__(self, name: str) -> Any:  # in_flight() and the like of the bus's own
        return getattr(self.inner, name)

    def __enter__(self) -> ShreddingPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SeekableConsumer(EventConsumer, Protocol):
    def seek_to(self, offsets: Mapping[TP, int]) -> None:
        """Deliver each partition again from the given offset."""
        ...


class ShreddingConsumer:
    """A consumer whose records come back with their sealed fields opened.

    ``erases``: this consumer owns the keys' destruction (the PostgreSQL sink's): the key of
    each user whose valid ``user.erased`` it commits is destroyed just before the commit, so
    a failed destruction is a refused commit (the batch comes again), never a lost one."""

    def __init__(self, inner: SeekableConsumer, keys: KeyCache, *, erases: bool = False,
                 retry_s: float = 2.0) -> None:
        self.inner = inner
        self.keys = keys
        self._erases = erases
        self._retry_s = retry_s
        self._pending: list[tuple[TP, int, str]] = []
        self._last_warned = -1e9

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        records = self.inner.poll_batch(max_records, timeout_s)
        if not records:
            return records
        erased = self._erasures(records)
        if erased:
            # Read by this process: its cached keys of those users go now, not at expiry.
            self.keys.forget({user for _tp, _offset, user in erased})
        values = [rec.value or b"" for rec in records]
        deadline = time.monotonic() + self._retry_s
        while True:
            try:
                opened = open_values(values, self.keys)
                break
            except KeyStoreError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                self._warn(exc)
                # Not delivered now: these records come again on a later poll.
                first: dict[TP, int] = {}
                for rec in records:
                    tp = (rec.topic, rec.partition)
                    first[tp] = min(first.get(tp, rec.offset), rec.offset)
                self.inner.seek_to(first)
                return []
        if self._erases:
            self._pending += erased
        return [rec if new is old else replace(rec, value=new)
                for rec, old, new in zip(records, values, opened, strict=True)]

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warned >= 10.0:
            self._last_warned = now
            log.warning("data keys unavailable, records delivered again later: %s", exc)

    @staticmethod
    def _erasures(records: Sequence[Record]) -> list[tuple[TP, int, str]]:
        found: list[tuple[TP, int, str]] = []
        for rec in records:
            value = rec.value
            if value is None or _ERASED_MARK not in value or peek_type(value) != _ERASED_TYPE:
                continue
            try:
                event = decode(value)
            except InvalidEvent:
                continue  # dead-lettered by the sinks; erases nothing
            found.append(((rec.topic, rec.partition), rec.offset, event.key))
        return found

    def commit(self, records: Sequence[Record]) -> None:
        if self._pending:
            upto: dict[TP, int] = {}
            for rec in records:
                tp = (rec.topic, rec.partition)
                upto[tp] = max(upto.get(tp, -1), rec.offset)
            due = [p for p in self._pending if p[1] <= upto.get(p[0], -1)]
            if due:
                try:
                    self.keys.erase({user for _tp, _offset, user in due})
                except KeyStoreError as exc:
                    raise BusError(f"data keys not destroyed, not committing: {exc}") from exc
                self._pending = [p for p in self._pending if p not in due]
        self.inner.commit(records)

    def seek_to_committed(self) -> None:
        self._pending.clear()  # delivered again, found again
        self.inner.seek_to_committed()

    def seek_to(self, offsets: Mapping[TP, int]) -> None:
        self._pending = [p for p in self._pending if p[0] not in offsets or p[1] < offsets[p[0]]]
        self.inner.seek_to(offsets)

    def assignment(self) -> list[TP]:
        return self.inner.assignment()

    def partition_of(self, topic: str, key: str) -> int:
        return self.inner.partition_of(topic, key)

    def processed_before(self, marks: Sequence[ProgressMark]) -> list[bool]:
        return self.inner.processed_before(marks)

    def pause(self, partitions: Sequence[TP]) -> None:
        self.inner.pause(partitions)

    def resume(self, partitions: Sequence[TP]) -> None:
        self.inner.resume(partitions)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.keys.close()


__all__ = ["KeyCache", "SeekableConsumer", "ShreddingConsumer", "ShreddingPublisher",
           "open_values"]
