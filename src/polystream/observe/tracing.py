"""W3C trace context (``traceparent``) from the HTTP request, through Kafka, to the consumers,
and the spans exported over OTLP when an endpoint is set.

The header is carried by hand (`event_headers`, `trace_id_of`): the platform needs one trace
id end to end — in logs, in the event's ``trace_id`` and in the audit document — whether or not
spans are exported, and the standard header lets any OpenTelemetry-instrumented client or
consumer join the same trace.

Spans use the OpenTelemetry API; the SDK and its OTLP/HTTP exporter are loaded by
`observe.otlp.configure` only when ``observability.otlp_endpoint`` is set. Until then
`enabled()` is False and every helper here returns before touching OpenTelemetry: no tracer
provider, no exporter thread, no span objects. Once on:

* the API: one SERVER span per HTTP request (``request_span``), a PRODUCER child per publish
  whose span id becomes the parent in the Kafka ``traceparent`` header;
* each consumer (every sink and the auditor, through `runtime.loop`): one CONSUMER span per
  batch, *linked* to every distinct trace context of the batch (`batch_span`). Links, not one
  child span per event: a batch holds up to thousands of events of as many traces, and a span
  per event would multiply the sinks' span and export cost by the batch size (the messaging
  conventions of OpenTelemetry link batch processing the same way).

The trace id in every span and link is the one in the logs and in the audit document: the API
takes it from the request's header (or its own server span when the header is absent or
invalid) and the consumers read it from the record's header.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, Tracer

from polystream.bus.ports import Record

#: Kafka header names on every event the API publishes.
TRACEPARENT = "traceparent"
EVENT_ID = "event_id"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

log = logging.getLogger("polystream.trace")

#: Set by `observe.otlp.configure` when spans are exported; None = tracing off.
_tracer: Tracer | None = None
_shutdown: Callable[[], None] | None = None
_shutdown_timeout_s = 5.0


def _parts(traceparent: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent``, else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, parent = match.group(2), match.group(3)
    if trace_id == "0" * 32 or parent == "0" * 16:
        return None
    return trace_id, parent, int(match.group(4), 16)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent``; None when absent or invalid (the W3C rule:
    an invalid header starts a new trace rather than failing the request)."""
    parts = _parts(traceparent)
    return parts[0] if parts is not None else None


def new_span_id() -> str:
    return os.urandom(8).hex()


def traceparent(trace_id: str, span_id: str | None = None, sampled: bool = True) -> str:
    """A ``traceparent`` of ``trace_id`` with a fresh (or the given) parent span."""
    return f"00-{trace_id}-{span_id or new_span_id()}-{'01' if sampled else '00'}"


def event_headers(trace_id: str, event_id: str,
                  publish: tuple[str, bool] | None = None) -> dict[str, bytes]:
    """Kafka headers of one published event: the consumers log both without decoding it.
    ``publish``: the publishing span's id and whether it was sampled, when spans are exported
    (the consumers link to it, sampled ones only)."""
    span_id, sampled = publish if publish is not None else (None, True)
    return {TRACEPARENT: traceparent(trace_id, span_id, sampled).encode(),
            EVENT_ID: event_id.encode()}


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


# ------------------------------------------------------------------------------ spans


def install(tracer: Tracer, shutdown: Callable[[], None], shutdown_timeout_s: float) -> None:
    """Turn span export on for this process (`observe.otlp.configure` calls it)."""
    global _tracer, _shutdown, _shutdown_timeout_s
    _tracer, _shutdown, _shutdown_timeout_s = tracer, shutdown, shutdown_timeout_s


def enabled() -> bool:
    return _tracer is not None


def shutdown() -> None:
    """Export what is queued and turn tracing off, waiting at most the export timeout.
    Processes that leave through ``os._exit`` call it first (the SDK's own atexit hook would
    not run)."""
    global _tracer, _shutdown
    done, _tracer, _shutdown = _shutdown, None, None
    if done is None:
        return

    def flush() -> None:
        try:
            done()
        except Exception as exc:
            log.warning("tracing: flushing the last spans failed: %s", exc)

    # The SDK's shutdown may wait 30 s for an unreachable collector; a stopping worker must
    # not (its supervisor's grace period is shorter), so the wait is bounded here.
    flusher = threading.Thread(target=flush, name="otlp-flush", daemon=True)
    flusher.start()
    flusher.join(_shutdown_timeout_s)
    if flusher.is_alive():
        log.warning("tracing: the last spans were not exported within %gs",
                    _shutdown_timeout_s)


def _span_context(parts: tuple[str, str, int]) -> SpanContext:
    trace_id, span_id, flags = parts
    return SpanContext(trace_id=int(trace_id, 16), span_id=int(span_id, 16), is_remote=True,
                       trace_flags=TraceFlags(flags & 0x01))


def _parent(traceparent: str | None) -> Context | None:
    parts = _parts(traceparent)
    if parts is None:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(_span_context(parts)))


@contextmanager
def request_span(method: str, traceparent: str | None) -> Iterator[trace.Span | None]:
    """The API's span of one HTTP request, child of the caller's ``traceparent`` when it is
    valid (the same rule as `trace_id_of`, so the event gets this span's trace id); None when
    tracing is off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
            method, context=_parent(traceparent), kind=SpanKind.SERVER,
            attributes={"http.request.method": method}) as span:
        yield span


def current_trace_id() -> str | None:
    """The trace id of the current span (the request's, in the API); None when off."""
    if _tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


@contextmanager
def publish_span(topic: str, event_type: str) -> Iterator[tuple[str, bool] | None]:
    """A PRODUCER span around one publish; yields its span id and sampled flag for the Kafka
    header (None when tracing is off: the header then gets a random parent span id)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
            f"publish {topic}", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.operation.type": "send",
                        "messaging.destination.name": topic,
                        "polystream.event_type": event_type}) as span:
        ctx = span.get_span_context()
        yield trace.format_span_id(ctx.span_id), ctx.trace_flags.sampled


def links_of(records: Sequence[Record]) -> list[Link]:
    """One link per distinct sampled trace context the records carry. A record without one, or
    with an invalid one, adds none; nor does an unsampled one (its trace is not recorded, so
    the sampler set in the API — ``OTEL_TRACES_SAMPLER`` — also bounds the links' cost)."""
    seen: set[bytes] = set()
    links: list[Link] = []
    for rec in records:
        raw = rec.headers.get(TRACEPARENT)
        if raw is None or raw in seen:
            continue
        seen.add(raw)
        parts = _parts(raw.decode("ascii", "replace"))
        if parts is not None and parts[2] & 0x01:
            links.append(Link(_span_context(parts)))
    return links


@contextmanager
def batch_span(consumer: str, records: Sequence[Record]) -> Iterator[trace.Span | None]:
    """A consumer's span of one batch, linked to the batch's trace contexts; current while the
    handler runs, so `note_batch` adds its counts. None when off or the batch is empty."""
    if _tracer is None or not records:
        yield None
        return
    with _tracer.start_as_current_span(
            f"{consumer} process", kind=SpanKind.CONSUMER, links=links_of(records),
            attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                        "messaging.batch.message_count": len(records),
                        "polystream.consumer": consumer}) as span:
        yield span


def note_batch(counts: Mapping[str, int | bool]) -> None:
    """Add a handler's counts (events, outcomes) to the current batch span, as
    ``polystream.<name>`` attributes; nothing when tracing is off."""
    if _tracer is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"polystream.{k}": v for k, v in counts.items()})
