"""The API's /metrics and the trace context it puts on every published event."""

from __future__ import annotations

import re
import uuid

from prometheus_client.parser import text_string_to_metric_families

from polystream.observe.tracing import EVENT_ID, TRACEPARENT, trace_id_of

from .cases import BAD, VALID
from .conftest import OPERATOR, Harness, make_harness, make_settings


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_commands_and_latency_per_route_template(harness: Harness) -> None:
    before = harness.client.get("/metrics", headers=OPERATOR)
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    rate = VALID["rate"].call
    accepted = _value(before.text, "polystream_api_commands_total",
                      event_type="rating.submitted", outcome="accepted")
    refused = _value(before.text, "polystream_api_commands_total",
                     event_type="subscription.plan_changed", outcome="refused")
    route = dict(method="PUT", route="/titles/{title_id}/ratings/{user_id}", status="202")
    timed = _value(before.text, "polystream_http_request_seconds_count", **route)

    assert rate.send(harness.client).status_code == 202
    assert rate.send(harness.client).status_code == 202
    # A change to the same plan: refused by the event contract, nothing published.
    assert BAD["same-plan"].call.send(harness.client).status_code == 422

    after = harness.client.get("/metrics", headers=OPERATOR).text
    assert _value(after, "polystream_api_commands_total", event_type="rating.submitted",
                  outcome="accepted") == accepted + 2
    assert _value(after, "polystream_api_commands_total",
                  event_type="subscription.plan_changed", outcome="refused") == refused + 1
    assert _value(after, "polystream_http_request_seconds_count", **route) == timed + 2
    # Raw paths (ids) never become labels: one series per template.
    assert rate.url.split("/")[2] not in after


def test_metrics_stay_out_of_the_openapi_document(harness: Harness) -> None:
    assert "/metrics" not in harness.client.get("/openapi.json").json()["paths"]


def test_metrics_are_for_operators_unless_opened_for_a_private_scraper(
        harness: Harness) -> None:
    # The harness's client is a logged-in user: not an operator.
    refused = harness.client.get("/metrics")
    assert refused.status_code == 403 and refused.json()["detail"] == "operators only"
    assert harness.client.get("/metrics", headers=OPERATOR).status_code == 200
    settings = make_settings()
    settings = settings.model_copy(update={"observability": settings.observability.model_copy(
        update={"metrics_require_token": False})})
    for opened in make_harness(settings=settings):
        assert opened.client.get("/metrics").status_code == 200


def test_metrics_can_be_turned_off() -> None:
    settings = make_settings()
    settings = settings.model_copy(update={"observability": settings.observability.model_copy(
        update={"api_metrics": False})})
    for harness in make_harness(settings=settings):
        assert harness.client.get("/metrics").status_code == 404


def test_incoming_traceparent_travels_in_the_kafka_headers_and_the_event(
        harness: Harness) -> None:
    trace_id = uuid.uuid4().hex
    header = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    harness.new_records()
    response = VALID["rate"].call.send(harness.client, traceparent=header)
    assert response.status_code == 202
    [(record, event)] = harness.new_events()
    assert event.trace_id == trace_id
    assert trace_id_of(record.headers[TRACEPARENT].decode()) == trace_id
    # A new span of the same trace: the producer is a child of the caller's span.
    assert record.headers[TRACEPARENT].decode() != header
    assert record.headers[EVENT_ID].decode() == response.json()["event_id"]


def test_without_or_with_an_invalid_traceparent_a_new_trace_starts(harness: Harness) -> None:
    harness.new_records()
    for headers in ({}, {"traceparent": "00-" + "0" * 32 + "-0123456789abcdef-01"},
                    {"traceparent": "garbage"}):
        assert VALID["rate"].call.send(harness.client, **headers).status_code == 202
    events = harness.new_events()
    trace_ids = {event.trace_id for _record, event in events}
    assert len(events) == 3 and len(trace_ids) == 3
    for record, event in events:
        assert re.fullmatch(r"[0-9a-f]{32}", event.trace_id) and event.trace_id != "0" * 32
        assert trace_id_of(record.headers[TRACEPARENT].decode()) == event.trace_id
