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

from polystream.domain.events import Receipt
from polystream.sinks.ports import TransientStoreError

RECEIPT_TTL_S = 24 * 3600


class ReceiptLog(Protocol):
    def record(self, receipts: Sequence[Receipt]) -> None: ...

    def get(self, event_id: UUID) -> list[Receipt]:
        """Every sink's receipt for the event so far (any order)."""
        ...


class RedisReceiptLog:
    """Hash `{prefix}:receipt:{event_id}`: field = sink, value = the receipt's JSON."""

    def __init__(self, client: redis.Redis, *, prefix: str = "ps", ttl_s: int = RECEIPT_TTL_S):
        self._r = client
        self._prefix = prefix
        self._ttl = ttl_s

    def _key(self, event_id: UUID) -> str:
        return f"{self._prefix}:receipt:{event_id}"

    def record(self, receipts: Sequence[Receipt]) -> None:
        if not receipts:
            return
        pipe = self._r.pipeline(transaction=False)
        for rc in receipts:
            key = self._key(rc.event_id)
            pipe.hset(key, rc.sink.value, rc.model_dump_json())
            pipe.expire(key, self._ttl)
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc

    def get(self, event_id: UUID) -> list[Receipt]:
        try:
            raw = self._r.hgetall(self._key(event_id))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
        return [Receipt.model_validate_json(v) for v in raw.values()]


class InMemoryReceiptLog:
    def __init__(self, *, ttl_s: float = RECEIPT_TTL_S) -> None:
        self._data: dict[UUID, dict[str, tuple[float, Receipt]]] = {}
        self._lock = threading.Lock()
        self._ttl = ttl_s

    def record(self, receipts: Sequence[Receipt]) -> None:
        now = time.monotonic()
        with self._lock:
            for rc in receipts:
                self._data.setdefault(rc.event_id, {})[rc.sink.value] = (now, rc)

    def get(self, event_id: UUID) -> list[Receipt]:
        now = time.monotonic()
        with self._lock:
            entries = self._data.get(event_id, {})
            return [rc for at, rc in entries.values() if now - at < self._ttl]
