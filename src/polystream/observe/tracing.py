"""W3C trace context (``traceparent``) from the HTTP request, through Kafka, to the consumers.

We propagate the header ourselves instead of using the OpenTelemetry SDK: the platform needs
one trace id end to end (in logs, in the event's ``trace_id`` and in the audit document), and
the SDK's span machinery and exporters would be three more pinned packages for no exporter
anyone runs yet. The header format is the standard one, so an OpenTelemetry-instrumented
client or consumer joins the same trace.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

from polystream.bus.ports import Record

#: Kafka header names on every event the API publishes.
TRACEPARENT = "traceparent"
EVENT_ID = "event_id"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

log = logging.getLogger("polystream.trace")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent``; None when absent or invalid (the W3C rule:
    an invalid header starts a new trace rather than failing the request)."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, parent = match.group(2), match.group(3)
    if trace_id == "0" * 32 or parent == "0" * 16:
        return None
    return trace_id


def new_span_id() -> str:
    return os.urandom(8).hex()


def traceparent(trace_id: str, span_id: str | None = None) -> str:
    """A sampled ``traceparent`` of ``trace_id`` with a fresh (or the given) parent span."""
    return f"00-{trace_id}-{span_id or new_span_id()}-01"


def event_headers(trace_id: str, event_id: str) -> dict[str, bytes]:
    """Kafka headers of one published event: the consumers log both without decoding it."""
    return {TRACEPARENT: traceparent(trace_id).encode(), EVENT_ID: event_id.encode()}


def log_consumed(consumer: str, records: Sequence[Record]) -> None:
    """One DEBUG line per record that carries trace context (cheap when DEBUG is off)."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    for rec in records:
        raw = rec.headers.get(TRACEPARENT)
        if raw is None:
            continue
        trace_id = trace_id_of(raw.decode("ascii", "replace"))
        event_id = rec.headers.get(EVENT_ID, b"").decode("ascii", "replace") or None
        log.debug("%s consumed %s[%d]@%d", consumer, rec.topic, rec.partition, rec.offset,
            extra={"trace_id": trace_id, "event_id": event_id})
