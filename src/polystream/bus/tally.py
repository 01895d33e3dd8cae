"""What a publisher counts of its deliveries, the same for every adapter.

Delivery reports arrive on another thread than the callers' (librdkafka's poll thread), so the
counts live behind one lock. Failures are kept twice: for the publisher's life (``stats``) and
until a ``flush`` raises them, so that each is reported once and one bad message does not make
every later flush of a long-lived publisher fail.
"""

from __future__ import annotations

import threading

from polystream.bus.ports import PublisherStats


class DeliveryTally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acked = 0
        self._failed = 0
        self._first_error: str | None = None
        self._unreported = 0
        self._unreported_first: str | None = None

    def acked(self) -> None:
        with self._lock:
            self._acked += 1

    def failed(self, error: str) -> None:
        with self._lock:
            self._failed += 1
            self._unreported += 1
            if self._first_error is None:
                self._first_error = error
            if self._unreported_first is None:
                self._unreported_first = error

    def stats(self) -> PublisherStats:
        """Cumulative (acked, failed, first_error) over the publisher's life."""
        with self._lock:
            return PublisherStats(self._acked, self._failed, self._first_error)

    def take_unreported(self) -> str | None:
        """What a flush must raise about the failures since the last one (None when there were
        none); from now on they count as reported."""
        with self._lock:
            failed, first = self._unreported, self._unreported_first
            self._unreported, self._unreported_first = 0, None
        return f"{failed} message(s) not delivered (first: {first})" if failed else None


__all__ = ["DeliveryTally"]
