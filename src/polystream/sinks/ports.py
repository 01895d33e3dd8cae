"""What a sink's store must do, whatever the store is.

A store applies a batch of valid events durably and idempotently and says, per event, what it
did. The worker (`sinks/worker.py`) owns everything else: polling, decoding, dead letters,
retries, receipts and offset commits. Every store has a real implementation and an in-memory
one, checked by the same contract tests (`tests/contract/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from polystream.domain.events import AnyEvent, Sink
from polystream.domain.outcomes import (
    DUPLICATE,
    STALE,
    STORED,
    Outcome,
    missing_prerequisite,
    rejected,
)

__all__ = [
    "DUPLICATE", "STALE", "STORED", "EventStore", "Outcome", "missing_prerequisite", "rejected",
]


class EventStore(Protocol):
    """The write side of one sink's store."""

    sink: Sink

    def apply(self, events: Sequence[AnyEvent], *, allow_defer: bool = True
              ) -> list[Outcome]:
        """Apply the batch in order and return one outcome per event, in the same order.

        With ``allow_defer`` (the default), an event whose prerequisite from another topic is
        missing gets a `missing_prerequisite` outcome and leaves no trace; without it, that
        rejection is final (recorded like any other, so a replay returns DUPLICATE).

        Durable when it returns. Idempotent: applying an event again returns DUPLICATE (or
        STALE) and changes nothing. Business refusals are REJECTED outcomes, not exceptions.
        Raises TransientStoreError when the store cannot be reached (nothing, or only
        idempotent parts, applied), PermanentStoreError naming the event that can never be
        applied (the worker dead-letters it and retries the others).
        """
        ...

    def close(self) -> None: ...
