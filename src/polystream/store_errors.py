"""The errors a store raises on purpose, shared by every layer that calls a store.

They live outside `sinks/` so that the audit worker, the read side and the API can catch them
without importing the sink adapters (see the import contracts in pyproject.toml).
"""

from __future__ import annotations

from uuid import UUID


class StoreError(RuntimeError):
    """Base of the errors a store raises on purpose; the driver's own errors never escape."""


class TransientStoreError(StoreError):
    """The store is unreachable or overloaded: the worker retries the whole batch with backoff
    and, while it keeps failing, waits (lag grows) rather than skipping anything."""


class PermanentStoreError(StoreError):
    """This event can never be applied (a constraint the event itself violates): the worker
    dead-letters it with the reason and the partition keeps flowing."""

    def __init__(self, event_id: UUID, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason
