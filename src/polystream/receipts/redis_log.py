"""The receipt log in Redis (the real stack's adapter of `polystream.receipts.ReceiptLog`)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import redis

from polystream.domain.events import Receipt, Sink
from polystream.receipts import CLAIM_LEASE_S, CLAIM_TTL_S, RECEIPT_TTL_S, ClaimHeld
from polystream.store_errors import TransientStoreError

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

# A claim is `pending` (with the lease as its TTL) until confirmed, then `done` (any other
# value, as written before leases existed, counts as done too). Read and set in one step, so two
# consumers never both take it.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1])
  return 1
end
if held == 'pending' then return 0 end
return -1
"""


class RedisReceiptLog:
    """One string key per (event, sink): `{prefix}:receipt:{event_id}:{sink}` = the receipt's
    JSON, with a TTL. One `SET … EX` per receipt (a hash would need a second command for its
    TTL), all of a batch's in one script call, and a read is one `MGET` over the four sinks."""

    def __init__(self, client: redis.Redis, *, prefix: str = "ps", ttl_s: int = RECEIPT_TTL_S,
                 lease_s: int = CLAIM_LEASE_S):
        self._r = client
        self._prefix = prefix
        self._ttl = ttl_s
        self._lease = lease_s
        # Loaded on first use, and again after a server restart (redis-py handles NOSCRIPT).
        self._set_all = client.register_script(_SET_ALL)
        self._claim = client.register_script(_CLAIM)

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
            taken = int(self._claim(keys=[f"{self._prefix}:claim:{name}"], args=[self._lease]))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
        except redis.ResponseError as exc:
            raise TransientStoreError(f"receipts: redis refused: {exc}") from exc
        if taken == 0:
            raise ClaimHeld(f"claim {name} is held by another consumer (lease "
                            f"{self._lease} s)")
        return taken == 1

    def confirm(self, names: Sequence[str]) -> None:
        if not names:
            return
        try:
            with self._r.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.set(f"{self._prefix}:claim:{name}", "done", ex=CLAIM_TTL_S)
                pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc

    def release(self, name: str) -> None:
        try:
            self._r.delete(f"{self._prefix}:claim:{name}")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientStoreError(f"receipts: redis unavailable: {exc}") from exc
