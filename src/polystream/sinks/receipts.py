"""Where a sink says what it did with each event, for read-your-writes.

Every sink writes its receipts here (Redis in the real stack, with a TTL) after its batch is
durable; the API reads them for `GET /events/{id}` and for commands sent with `wait`. The same
receipts also go to the receipts topic for the audit trail (that is the durable record).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

import redis

from polystream.domain.events import Receipt, Sink
from polystream.sinks.ports import TransientStoreError

RECEIPT_TTL_S = 24 * 3600
#: The first part of every Redis key (after the prefix) the receipt log writes: the platform's
#: own bookkeeping, not live state (`verify` leaves them out).
RECEIPT_NAMESPACES = frozenset({"receipt", "claim", "event-owner"})
# As long as the topics keep records (7 days) and then some: a replay within it is recognised.
CLAIM_TTL_S = 30 * 24 * 3600


class ReceiptLog(Protocol):
    def record(self, receipts: Sequence[Receipt],
               encoded: Sequence[str] | None = None) -> None:
        """Store the receipts; ``encoded`` is their JSON when the caller already has it
        (aligned with ``receipts``), so it is not made twice."""
        ...

    def get(self, event_id: UUID) -> list[Receipt]:
        """Every sink's receipt for the event so far (any order)."""
        ...

    def claim(self, name: str) -> bool:
        """True the first time ``name`` is claimed (within the retention): makes one-off
        effects outside the stores, like a dead letter, happen once across replays."""
        ...

    def set_owner(self, event_id: UUID, user_id: str) -> None:
        """Record who caused the event (kept as long as its receipts): only they, and
        operators, may read its status."""
        ...

    def owner_of(self, event_id: UUID) -> str | None:
        """The user who caused the event, or None (unknown, expired, or caused by no user)."""
        ...


#: Receipts per script call: one command of a few hundred kilobytes at most.
_PER_CALL = 1000
# Every receipt of a batch in one command: packing and parsing one SET per receipt in
# redis-py cost more than the server's work.
_SET_ALL = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


class RedisReceiptLog:
    """One string key per (event, sink): `{prefix}:receipt:{event_id}:{sink}` = the receipt's
    JSON, with a TTL. One `SET … EX` per receipt (a hash would need a second command for its
    TTL), all of a batch's in one script call, and a read is one `MGET` over the four sinks."""

    def __init__(self, client: redis.Redis, *, prefix: str = "ps", ttl_s: int = RECEIPT_TTL_S):
        self._r = client
        self._prefix = prefix
        self._ttl = ttl_s
        # Loaded on first use, and again after a server restart (redis-py handles NOSCRIPT).
        self._set_all = client.register_script(_SET_ALL)

    def _key(self, event_id: UUID, sink: str) -> str:
        return f"{self._prefix}:receipt:{event_id}:{sink}"

    def record(self, receipts: Sequence[Receipt],
               encoded: Sequence[str] | None = None) -> None:
        if not receipts:
            return
        values = encoded if encoded is not None else [rc.model_dump_json() for rc in receipts]
        keys = [self._key(rc.event_id, rc.sink.value) for rc in receipts]
        try:
            for start in range(0, len(keys), _PER_CALL):
                self._set_all(keys=keys[start:start + _PER_CALL],
                              args=[self._ttl, *values[start:start + _PER_CALL]])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
        except redis.ResponseError as exc:
            # A busy or loading server: the batch is retried, nothing is lost.
            raise TransientStoreError(f"receipts: redis refused: {exc}") from exc

    def get(self, event_id: UUID) -> list[Receipt]:
        try:
            raw = self._r.mget([self._key(event_id, sink.value) for sink in Sink])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
        return [Receipt.model_validate_json(v) for v in raw if v is not None]

    def close(self) -> None:
        self._r.close()

    def _owner_key(self, event_id: UUID) -> str:
        return f"{self._prefix}:event-owner:{event_id}"

    def set_owner(self, event_id: UUID, user_id: str) -> None:
        try:
            self._r.set(self._owner_key(event_id), user_id, ex=self._ttl)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc

    def owner_of(self, event_id: UUID) -> str | None:
        try:
            raw = self._r.get(self._owner_key(event_id))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def claim(self, name: str) -> bool:
        try:
            return bool(self._r.set(f"{self._prefix}:claim:{name}", 1, nx=True,
                                    ex=CLAIM_TTL_S))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc


class InMemoryReceiptLog:
    def __init__(self, *, ttl_s: float = RECEIPT_TTL_S) -> None:
        self._data: dict[UUID, dict[str, tuple[float, Receipt]]] = {}
        self._lock = threading.Lock()
        self._ttl = ttl_s
        self._claims: set[str] = set()
        self._owners: dict[UUID, tuple[float, str]] = {}

    def set_owner(self, event_id: UUID, user_id: str) -> None:
        with self._lock:
            self._owners[event_id] = (time.monotonic(), user_id)

    def owner_of(self, event_id: UUID) -> str | None:
        with self._lock:
            found = self._owners.get(event_id)
        if found is None or time.monotonic() - found[0] >= self._ttl:
            return None
        return found[1]

    def claim(self, name: str) -> bool:
        with self._lock:
            if name in self._claims:
                return False
            self._claims.add(name)
            return True

    def record(self, receipts: Sequence[Receipt],
               encoded: Sequence[str] | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            for rc in receipts:
                self._data.setdefault(rc.event_id, {})[rc.sink.value] = (now, rc)

    def get(self, event_id: UUID) -> list[Receipt]:
        now = time.monotonic()
        with self._lock:
            entries = self._data.get(event_id, {})
            return [rc for at, rc in entries.values() if now - at < self._ttl]
