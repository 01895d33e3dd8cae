"""Read-your-writes: an event's status per store, from the sinks' receipts.

How waiting works: the command's event is published first (so waiting never delays or risks
the publish), then the ReceiptLog is polled every `POLL_INTERVAL_S` (async sleep, the lookup
itself runs in a worker thread because the Redis client is synchronous) until every store
concerned has a receipt, one of them refused the event (rejected / dead-lettered: the outcome
cannot become a success any more, so there is no point waiting for the others), or the wait
runs out. The stores concerned are ``EVENT_TYPES[type].consumers`` minus the audit, which
records everything and never refuses.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from polystream.api.events.schemas import EventStatus, SinkStatus
from polystream.domain.events import EVENT_TYPES, Receipt, ReceiptStatus, Sink
from polystream.receipts import ReceiptLog

log = logging.getLogger("polystream.api.events")

#: Receipts are written by the sinks right after their batch is durable, typically within tens
#: of milliseconds on an idle stack; 20 ms keeps the added latency small for about 50 cheap
#: Redis reads per second per waiting request.
POLL_INTERVAL_S = 0.02

_FAILED = (ReceiptStatus.REJECTED, ReceiptStatus.DEAD_LETTERED)


class ReceiptsUnavailable(RuntimeError):
    pass


def concerned_sinks(event_type: str) -> tuple[Sink, ...]:
    return tuple(sink for sink in EVENT_TYPES[event_type].consumers if sink is not Sink.AUDIT)


def summarize(event_id: UUID, event_type: str | None, receipts: list[Receipt]) -> EventStatus:
    """Combine receipts into one status. A receipt's own type beats the caller's hint."""
    if receipts:
        event_type = receipts[0].event_type
    by_sink = {receipt.sink: receipt for receipt in receipts}
    concerned = concerned_sinks(event_type) if event_type in EVENT_TYPES else ()
    sinks: dict[str, SinkStatus] = {sink.value: SinkStatus(status="pending") for sink in concerned}
    for sink in (*concerned, *(s for s in Sink if s in by_sink and s not in concerned)):
        receipt = by_sink.get(sink)
        if receipt is not None:
            sinks[sink.value] = SinkStatus(
                status=receipt.status.value,
                reason=receipt.reason,
                processed_at=receipt.processed_at,
            )
    statuses = {receipt.status for receipt in receipts}
    detail = None
    if ReceiptStatus.REJECTED in statuses:
        status = "rejected"
        detail = _reasons(receipts, ReceiptStatus.REJECTED)
    elif ReceiptStatus.DEAD_LETTERED in statuses:
        status = "dead_lettered"
        detail = _reasons(receipts, ReceiptStatus.DEAD_LETTERED)
    elif event_type is None:
        status = "unknown"
        detail = (
            "no store has reported on this event yet; add ?type=<event type> to see which "
            "stores it is waiting for"
        )
    elif any(sink not in by_sink for sink in concerned):
        status = "pending"
    elif ReceiptStatus.STALE in statuses:
        status = "stale"
        detail = _reasons(receipts, ReceiptStatus.STALE) or "a newer version was already stored"
    else:
        status = "stored"
    return EventStatus(
        event_id=event_id,
        type=event_type,
        status=status,
        sinks=sinks,
        detail=detail,
    )


def _reasons(receipts: list[Receipt], status: ReceiptStatus) -> str | None:
    reasons = [f"{r.sink.value}: {r.reason or status.value}" for r in receipts
               if r.status is status]
    return "; ".join(sorted(reasons)) or None


def is_final(status: EventStatus) -> bool:
    return status.status not in ("unknown", "pending")


async def read_status(log_: ReceiptLog, event_id: UUID, event_type: str | None) -> EventStatus:
    try:
        receipts = await asyncio.to_thread(log_.get, event_id)
    except Exception as exc:
        # Any failure of the receipt store (Redis down, a malformed entry) only means "status
        # unknown right now"; it must never turn an accepted command into an error.
        raise ReceiptsUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return summarize(event_id, event_type, receipts)


async def wait_for_status(
    log_: ReceiptLog, event_id: UUID, event_type: str, wait_s: float
) -> EventStatus:
    """Poll until the status is final or ``wait_s`` has passed; never raises for receipts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            status = await read_status(log_, event_id, event_type)
        except ReceiptsUnavailable as exc:
            log.warning("receipts unavailable while waiting for %s: %s", event_id, exc)
            status = summarize(event_id, event_type, [])
            status.detail = "the receipt store is unavailable; the event was accepted"
            return status
        remaining = deadline - loop.time()
        if is_final(status) or remaining <= 0:
            return status
        await asyncio.sleep(min(POLL_INTERVAL_S, remaining))
