"""Span export switches (issue 14, item 4): without an endpoint nothing of the SDK is loaded or
started; with one, the consumer loop's batch span reaches an OTLP/HTTP receiver linked to the
batch's trace contexts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import pytest
from opentelemetry import trace
from pydantic import ValidationError

from e2e.otlp_receiver import OtlpReceiver
from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import Record
from polystream.observe import otlp, tracing
from polystream.runtime.loop import TP, BatchContext, ConsumerLoop, LoopConfig
from polystream.settings import ObservabilitySettings

TRACE_A, TRACE_B = "a" * 31 + "1", "b" * 31 + "2"


class Recording:
    """A handler that notes whether a span was recording while it ran, and counts."""

    def __init__(self) -> None:
        self.recording: list[bool] = []

    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        self.recording.append(trace.get_current_span().is_recording())
        tracing.note_batch({"events": len(records), "outcome.stored": len(records)})

    def settle(self) -> None:
        pass

    def held(self) -> Mapping[TP, int]:
        return {}

    def wants_idle_call(self) -> bool:
        return False

    def forget(self, owned: set[TP]) -> None:
        pass

    def reset(self, ctx: BatchContext) -> None:
        pass

    def close(self) -> None:
        pass


def _loop(headers: list[dict[str, bytes]]) -> tuple[ConsumerLoop, Recording]:
    broker = InMemoryBroker(partitions_default=1)
    publisher = InMemoryEventPublisher(broker)
    for i, h in enumerate(headers):
        publisher.publish("t", f"k{i}", b"{}", h)
    publisher.flush()
    handler = Recording()
    loop = ConsumerLoop(name="test", consumer=InMemoryEventConsumer(broker, "g", ["t"]),
                        publisher=publisher, handler=handler, config=LoopConfig(linger_s=0.01))
    return loop, handler


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    yield
    tracing.shutdown()


def _exporter_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("OtelBatch")]


def test_without_an_endpoint_no_provider_no_exporter_and_no_span() -> None:
    assert otlp.configure(ObservabilitySettings(), "test") is False
    assert not tracing.enabled()
    assert _exporter_threads() == []
    loop, handler = _loop([tracing.event_headers(TRACE_A, "e1")])
    result = loop.step()
    assert result.records == 1 and result.committed
    assert handler.recording == [False]
    with tracing.request_span("POST", tracing.traceparent(TRACE_A)) as span:
        assert span is None
        assert tracing.current_trace_id() is None
    with tracing.publish_span("t", "x") as published:
        assert published is None


def test_a_process_without_an_endpoint_never_imports_the_trace_sdk() -> None:
    # redis-py imports the SDK's *metrics* part when it is installed (its own optional
    # instrumentation); the tracer provider and the exporter stay out.
    code = ("import sys\n"
            "from polystream.observe import otlp\n"
            "from polystream.settings import ObservabilitySettings\n"
            "import polystream.runtime.loop, polystream.api.app\n"
            "assert otlp.configure(ObservabilitySettings(), 'api') is False\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk.trace')"
            " or m.startswith('opentelemetry.exporter')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_with_an_endpoint_the_batch_span_is_exported_with_links() -> None:
    receiver = OtlpReceiver()
    try:
        assert otlp.configure(ObservabilitySettings(otlp_endpoint=receiver.endpoint,
                                                    otlp_service_name="unit"), "sink-test")
        assert tracing.enabled()
        assert len(_exporter_threads()) == 1
        span_a, span_b = "1" * 16, "2" * 16
        loop, handler = _loop([
            tracing.event_headers(TRACE_A, "e1", (span_a, True)),
            tracing.event_headers(TRACE_A, "e2", (span_a, True)),  # the same context: one link
            tracing.event_headers(TRACE_B, "e3", (span_b, True)),
            tracing.event_headers(TRACE_B, "e4", ("3" * 16, False)),  # not sampled: no link
            {"traceparent": b"not a traceparent"},  # no link, no failure
            {},
        ])
        assert loop.step().committed
        assert handler.recording == [True]
        tracing.shutdown()  # flushes the exporter's queue
        assert not tracing.enabled()
        [span] = receiver.spans
        assert span.service == "unit-sink-test"
        assert span.name == "test process"
        assert sorted(span.links) == [(TRACE_A, span_a), (TRACE_B, span_b)]
        assert span.trace_id not in (TRACE_A, TRACE_B)
        assert span.attributes["messaging.batch.message_count"] == 6
        assert span.attributes["polystream.events"] == 6
        assert span.attributes["polystream.outcome.stored"] == 6
        assert span.attributes["polystream.committed"] is True
    finally:
        receiver.close()


def test_the_request_span_continues_the_callers_trace_and_parents_the_publish() -> None:
    receiver = OtlpReceiver()
    try:
        otlp.configure(ObservabilitySettings(otlp_endpoint=receiver.endpoint + "/v1/traces"),
                       "api")
        caller = "c" * 16
        with tracing.request_span("POST", f"00-{TRACE_A.upper()}-{caller}-01") as span:
            assert span is not None
            assert tracing.current_trace_id() == TRACE_A
            with tracing.publish_span("polystream.users", "user.registered") as published:
                assert published is not None and published[1] is True
        with tracing.request_span("GET", "00-garbage") as span:
            fresh = tracing.current_trace_id()
        assert fresh is not None and fresh != TRACE_A
        tracing.shutdown()
        by_name = {s.name: s for s in receiver.spans}
        server, publish = by_name["POST"], by_name["publish polystream.users"]
        assert (server.trace_id, server.parent_span_id) == (TRACE_A, caller)
        assert (publish.trace_id, publish.parent_span_id, publish.span_id) == (
            TRACE_A, server.span_id, published[0])
        assert by_name["GET"].parent_span_id == ""
    finally:
        receiver.close()


def test_endpoint_and_headers_settings() -> None:
    assert otlp.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert otlp.traces_url("https://c/otlp/v1/traces/") == "https://c/otlp/v1/traces"
    assert otlp.parse_headers("api-key=s3cr=et, x-team = a ,") == {"api-key": "s3cr=et",
                                                                   "x-team": "a"}
    with pytest.raises(ValueError, match="key=value"):
        otlp.parse_headers("api-key")
    with pytest.raises(ValidationError):
        ObservabilitySettings(otlp_endpoint="collector:4318")
    assert ObservabilitySettings(otlp_endpoint=" ").otlp_endpoint is None


def test_shutdown_waits_at_most_its_timeout_for_a_slow_collector() -> None:
    flushed = threading.Event()

    def slow_flush() -> None:
        time.sleep(30)
        flushed.set()

    tracing.install(trace.NoOpTracer(), slow_flush, 0.2)
    started = time.monotonic()
    tracing.shutdown()
    assert time.monotonic() - started < 10
    assert not tracing.enabled() and not flushed.is_set()
