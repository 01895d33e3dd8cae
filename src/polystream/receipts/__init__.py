"""Where a sink says what it did with each event, for read-your-writes.

Every sink writes its receipts here (Redis in the real stack, with a TTL) after its batch is
durable; the API reads them for `GET /events/{id}` and for commands sent with `wait`. The same
receipts also go to the receipts topic for the audit trail (that is the durable record).

The port and its in-memory adapter are here; the Redis adapter is in `receipts.redis_log`,
imported only by the composition root, so importing this package loads no driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from polystream.domain.events import Receipt
from polystream.store_errors import TransientStoreError

RECEIPT_TTL_S = 24 * 3600
#: The first part of every Redis key (after the prefix) the receipt log writes: the platform's
#: own bookkeeping, not live state (`verify` leaves them out).
RECEIPT_NAMESPACES = frozenset({"receipt", "claim", "event-owner"})
# As long as the topics keep records (7 days) and then some: a replay within it is recognised.
CLAIM_TTL_S = 30 * 24 * 3600
#: How long a claim not yet confirmed keeps others off it: longer than a live consumer takes
#: from the claim to the delivery report (its batch, then a flush of at most 30 s), short enough
#: that the records of a consumer that died holding one wait at most this long for the next.
CLAIM_LEASE_S = 60


class ClaimHeld(TransientStoreError):
    """The claim is held, not confirmed, by another consumer (or one that died holding it):
    its effect may or may not have happened yet. Try again later; once the lease ends
    unconfirmed, the claim is free again."""


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
        """Makes one-off effects outside the stores, like a dead letter, happen once across
        replays, and not zero times across crashes. True: ``name`` is the caller's for
        `CLAIM_LEASE_S`; it must `confirm` it once the effect happened, or `release` it.
        False: its effect was confirmed (within the retention). Raises `ClaimHeld` while
        another holder's lease runs."""
        ...

    def confirm(self, names: Sequence[str]) -> None:
        """The effects of these claims happened: they stay taken for the retention."""
        ...

    def release(self, name: str) -> None:
        """Forget the claim ``name`` (its effect did not happen after all): the next claim of
        it is True again."""
        ...

    def set_owner(self, event_id: UUID, user_id: str) -> None:
        """Record who caused the event (kept as long as its receipts): only they, and
        operators, may read its status."""
        ...

    def owner_of(self, event_id: UUID) -> str | None:
        """The user who caused the event, or None (unknown, expired, or caused by no user)."""
        ...


class InMemoryReceiptLog:
    def __init__(self, *, ttl_s: float = RECEIPT_TTL_S,
                 lease_s: float = CLAIM_LEASE_S) -> None:
        self._data: dict[UUID, dict[str, tuple[float, Receipt]]] = {}
        self._lock = threading.Lock()
        self._ttl = ttl_s
        self._lease = lease_s
        # Claim name -> end of its lease (monotonic), or None once confirmed.
        self._claims: dict[str, float | None] = {}
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
        now = time.monotonic()
        with self._lock:
            if name in self._claims:
                lease_ends = self._claims[name]
                if lease_ends is None:
                    return False
                if now < lease_ends:
                    raise ClaimHeld(f"claim {name} is held by another consumer")
            self._claims[name] = now + self._lease
            return True

    def confirm(self, names: Sequence[str]) -> None:
        with self._lock:
            for name in names:
                self._claims[name] = None

    def release(self, name: str) -> None:
        with self._lock:
            self._claims.pop(name, None)

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
