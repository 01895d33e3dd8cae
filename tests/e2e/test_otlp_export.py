"""Spans over OTLP on the real stack (issue 14, item 4): the API and two workers run as real
processes with ``observability.otlp_endpoint`` pointing at a tiny OTLP/HTTP receiver of this
test; one command's trace id is found in the API's request and publish spans and in the batch
spans of the PostgreSQL sink and of the auditor (as links), and it is the trace id the API logs
and the event carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e.otlp_receiver import OtlpReceiver, ReceivedSpan
from e2e.test_observability_stack import Processes, _free_port, _json_lines, _wait_for
from polystream.bus.admin import ensure_topics, start_group_at_end
from polystream.bus.topology import topic_specs, topics_for
from polystream.chaos.deployment import Deployment
from polystream.domain.events import Sink
from polystream.settings import Settings

pytestmark = [pytest.mark.stack]

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # the span kinds of OTLP's protobuf


@pytest.fixture(scope="module")
def running(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, Any]]:
    deployment = Deployment(f"otlp-{uuid.uuid4().hex[:8]}")
    deployment.create(settings)
    mine = deployment.settings(settings)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    for sink in (Sink.POSTGRES, Sink.AUDIT):
        start_group_at_end(settings.kafka, mine.kafka.consumer_group(sink.value),
                           [t.value for t in topics_for(sink)])
    receiver = OtlpReceiver()
    api_port = _free_port()
    env = {**deployment.env(), "POLYSTREAM_OBSERVABILITY__LOG_FORMAT": "json",
           "POLYSTREAM_OBSERVABILITY__LOG_LEVEL": "INFO",
           "POLYSTREAM_OBSERVABILITY__OTLP_ENDPOINT": receiver.endpoint,
           "POLYSTREAM_OBSERVABILITY__OTLP_SERVICE_NAME": "otlp-test",
           # The SDK's own knob: export every 200 ms instead of 5 s, so the test waits less.
           "OTEL_BSP_SCHEDULE_DELAY": "200"}
    procs = Processes(tmp_path_factory.mktemp("otlp"))
    try:
        api_log = procs.start("api", ["api", "serve", "--port", str(api_port)], env)
        for which in ("postgres", "audit"):
            procs.start(which, ["worker", which, "--metrics-port", "0", "--linger-ms", "10",
                               "--fold-ms", "0"], env)
        api = f"http://127.0.0.1:{api_port}"
        _wait_for("the API ready", lambda: httpx.get(f"{api}/readyz").status_code == 200)
        yield {"api": api, "api_log": api_log, "receiver": receiver}
    finally:
        procs.stop()
        receiver.close()
        deployment.drop(settings)


def _register(api: str, headers: dict[str, str]) -> None:
    response = httpx.post(f"{api}/users", json={
        "email": f"otlp-{uuid.uuid4().hex[:8]}@example.org",
        "password": "a long enough passphrase", "display_name": "Otlp", "country": "PT",
        "birth_year": 1990}, headers=headers)
    assert response.status_code == 202, response.text


def _one(spans: list[ReceivedSpan], **where: Any) -> ReceivedSpan | None:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in where.items())]
    return found[0] if found else None


def test_a_commands_trace_reaches_the_api_sink_and_auditor_spans(
        running: dict[str, Any]) -> None:
    receiver: OtlpReceiver = running["receiver"]
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    _register(running["api"], {"traceparent": f"00-{trace_id}-{caller_span}-01"})

    server = _wait_for("the API's request span", lambda: _one(
        receiver.of_trace(trace_id), service="otlp-test-api", kind=SERVER))
    assert server.trace_id == trace_id
    assert server.parent_span_id == caller_span
    assert server.name == "POST /users"
    assert server.attributes["http.route"] == "/users"
    assert server.attributes["http.response.status_code"] == 202
    publish = _wait_for("the API's publish span", lambda: _one(
        receiver.of_trace(trace_id), service="otlp-test-api", kind=PRODUCER))
    assert (publish.trace_id, publish.parent_span_id) == (trace_id, server.span_id)
    assert publish.name == "publish polystream.users"

    # The consumers' batch spans link the publish span: the trace context of the record.
    sink = _wait_for("the PostgreSQL sink's batch span", lambda: _one(
        receiver.of_trace(trace_id), service="otlp-test-sink-postgres", kind=CONSUMER))
    assert (trace_id, publish.span_id) in sink.links
    assert sink.name == "sink postgres process"
    assert sink.attributes["polystream.outcome.stored"] >= 1
    assert sink.attributes["polystream.committed"] is True
    auditor = _wait_for("the auditor's batch span", lambda: _one(
        receiver.of_trace(trace_id), service="otlp-test-auditor", kind=CONSUMER))
    assert (trace_id, publish.span_id) in auditor.links
    assert auditor.attributes["polystream.events"] >= 1

    # The API's log line of the command carries the same trace id.
    lines = _wait_for("the trace id in the API log", lambda: [
        line for line in _json_lines(running["api_log"]) if line.get("trace_id") == trace_id])
    assert lines[0]["event"].startswith("accepted user.registered")


def test_without_a_traceparent_the_event_gets_the_request_spans_trace_id(
        running: dict[str, Any]) -> None:
    receiver: OtlpReceiver = running["receiver"]
    before = {s.span_id for s in receiver.spans}
    _register(running["api"], {})

    def accepted_lines() -> list[dict[str, Any]]:
        return [line for line in _json_lines(running["api_log"])
                if line.get("event", "").startswith("accepted user.registered")]

    server = _wait_for("a new request span", lambda: next(
        (s for s in receiver.spans if s.span_id not in before and s.kind == SERVER
         and s.name == "POST /users"), None))
    # The trace id the API logged (and wrote into the event) is the span's own.
    assert any(line["trace_id"] == server.trace_id for line in accepted_lines())
    sink = _wait_for("the sink's span linking the new trace", lambda: _one(
        receiver.of_trace(server.trace_id), service="otlp-test-sink-postgres"))
    assert sink.trace_id != server.trace_id  # a link, not a parent: a batch has many traces
