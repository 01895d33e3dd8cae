"""Observability on the real stack (issue 14's acceptance): the API and a worker run as real
processes in their own deployment; a command's trace id is found in the API's log, the worker's
log and the event's audit document, and both /metrics endpoints show their counters move."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from polystream.bootstrap import open_audit_index
from polystream.bus.admin import delete_groups, ensure_topics, start_group_at_end
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.topology import topic_specs, topics_for
from polystream.chaos.deployment import Deployment
from polystream.cli import app as polystream_app
from polystream.domain.events import Sink, encode
from polystream.domain.examples import example_event
from polystream.settings import Settings

pytestmark = [pytest.mark.stack]


OPERATOR_TOKEN = uuid.uuid4().hex
#: The API's /metrics is for operators: the scraper sends the operator token.
SCRAPER = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _total(text: str, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _wait_for(what: str, check: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen within {timeout_s:g}s (last: {last!r})")


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Path:
        log = self.tmp / f"{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "polystream", *args], env=env,
                                stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        self.procs.append((proc, handle))
        return log

    def stop(self) -> None:
        for proc, _ in self.procs:
            proc.terminate()
        for proc, handle in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            handle.close()


@pytest.fixture(scope="module")
def running(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, Any]]:
    deployment = Deployment(f"obs-{uuid.uuid4().hex[:8]}")
    deployment.create(settings)
    mine = deployment.settings(settings)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    # Only what this test publishes: earlier tests leave many events in the shared topics.
    for sink in Sink:
        start_group_at_end(settings.kafka, mine.kafka.consumer_group(sink.value),
                           [t.value for t in topics_for(sink)])
    api_port, metrics_port = _free_port(), _free_port()
    env = {**deployment.env(), "POLYSTREAM_OBSERVABILITY__LOG_FORMAT": "json",
           "POLYSTREAM_OBSERVABILITY__LAG_REFRESH_S": "1",
           "POLYSTREAM_API__OPERATOR_TOKEN": OPERATOR_TOKEN}
    procs = Processes(tmp_path_factory.mktemp("observability"))
    try:
        api_log = procs.start("api", ["api", "serve", "--port", str(api_port)],
                              {**env, "POLYSTREAM_OBSERVABILITY__LOG_LEVEL": "INFO"})
        worker_log = procs.start("worker", ["worker", "all", "--metrics-port",
                                            str(metrics_port), "--linger-ms", "10"],
                                 {**env, "POLYSTREAM_OBSERVABILITY__LOG_LEVEL": "DEBUG"})
        api = f"http://127.0.0.1:{api_port}"
        worker = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_for("the API ready", lambda: httpx.get(f"{api}/readyz").status_code == 200)
        _wait_for("the worker's /metrics", lambda: httpx.get(worker).status_code == 200)
        yield {"api": api, "worker": worker, "api_log": api_log, "worker_log": worker_log,
               "settings": mine}
    finally:
        procs.stop()
        deployment.drop(settings)


def test_metrics_of_the_api_and_a_worker_move_during_a_run(running: dict[str, Any]) -> None:
    api, worker = running["api"], running["worker"]
    accepted = ("polystream_api_commands_total",
                {"event_type": "user.registered", "outcome": "accepted"})
    latency = ("polystream_http_request_seconds_count",
               {"method": "POST", "route": "/users", "status": "202"})
    before_api = httpx.get(f"{api}/metrics", headers=SCRAPER).text
    before_worker = httpx.get(worker).text
    for i in range(5):
        response = httpx.post(f"{api}/users", json={
            "email": f"obs-{uuid.uuid4().hex[:8]}-{i}@example.org",
            "password": "a long enough passphrase", "display_name": "Obs",
            "country": "PT", "birth_year": 1990})
        assert response.status_code == 202, response.text
    after_api = httpx.get(f"{api}/metrics", headers=SCRAPER).text
    assert _total(after_api, accepted[0], **accepted[1]) == _total(
        before_api, accepted[0], **accepted[1]) + 5
    assert _total(after_api, latency[0], **latency[1]) == _total(
        before_api, latency[0], **latency[1]) + 5

    group = running["settings"].kafka.consumer_group("postgres")

    def worker_moved() -> bool:
        text = httpx.get(worker).text
        consumed = _total(text, "polystream_consumer_records_total", consumer="sink postgres")
        stored = _total(text, "polystream_sink_events_total", sink="postgres",
                        event_type="user.registered", status="stored")
        lag_series = _total(text, "polystream_consumer_lag", group=group, topic="polystream.users")
        has_lag = f'group="{group}"' in text
        return (consumed >= _total(before_worker, "polystream_consumer_records_total",
                                   consumer="sink postgres") + 5
                and stored >= _total(before_worker, "polystream_sink_events_total",
                                     sink="postgres", event_type="user.registered",
                                     status="stored") + 5
                and has_lag and lag_series == 0)

    _wait_for("the worker's counters moving and its lag back to 0", worker_moved)


def test_one_trace_id_in_the_api_log_a_worker_log_and_the_audit_document(
        running: dict[str, Any]) -> None:
    trace_id = uuid.uuid4().hex
    response = httpx.post(
        f"{running['api']}/users",
        json={"email": f"trace-{uuid.uuid4().hex[:8]}@example.org",
              "password": "a long enough passphrase", "display_name": "Trace",
              "country": "PT", "birth_year": 1990},
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
    assert response.status_code == 202, response.text

    def in_log(path: Path, *, consumer: str | None = None) -> list[dict[str, Any]]:
        return [line for line in _json_lines(path) if line.get("trace_id") == trace_id
                and (consumer is None or line["event"].startswith(consumer))]

    api_lines = _wait_for("the trace id in the API log", lambda: in_log(running["api_log"]))
    # A registration answers no event id (it would tell whether the email has an account):
    # the API's log line names the event it published.
    event_id = api_lines[0]["event_id"]
    assert api_lines[0]["level"] == "info"
    for consumer in ("sink postgres", "sink redis", "auditor"):
        lines = _wait_for(f"the trace id in the log of the {consumer}",
                          lambda c=consumer: in_log(running["worker_log"], consumer=c))
        assert lines[0]["event_id"] == event_id
    index = open_audit_index(running["settings"], read_only=True)
    try:
        def audited() -> Any:
            index.refresh()
            record = index.get(event_id)
            return record if record is not None and record.kind is not None else None

        record = _wait_for("the audit document", audited)
        assert record.trace_id == trace_id
    finally:
        index.close()
    # Passwords and emails never reach a log line, whoever logged it.
    logs = running["api_log"].read_text() + running["worker_log"].read_text()
    assert "a long enough passphrase" not in logs
    assert "@example.org" not in logs


def test_lag_command_reports_what_a_group_has_not_read(settings: Settings) -> None:
    prefix = f"lag-{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(update={"group_prefix": prefix})
    groups = [kafka.consumer_group(sink.value) for sink in Sink]
    for sink in Sink:
        start_group_at_end(settings.kafka, kafka.consumer_group(sink.value),
                           [t.value for t in topics_for(sink)])
    publisher = KafkaEventPublisher(settings.kafka, client_id=prefix)
    try:
        for _ in range(7):
            event = example_event("rating.submitted")
            publisher.publish("polystream.ratings", event.key, encode(event)).result(30)
    finally:
        publisher.close()
    try:
        result = CliRunner().invoke(polystream_app, ["lag", "--json"],
                                    env={"POLYSTREAM_KAFKA__GROUP_PREFIX": prefix})
        assert result.exit_code == 0, result.output
        lag = json.loads(result.output)
        postgres = lag[kafka.consumer_group("postgres")]
        assert postgres["polystream.ratings"]["lag"] == 7
        assert sum(postgres["polystream.ratings"]["partitions"].values()) == 7
        assert postgres["polystream.users"]["lag"] == 0
        # Mongo's group does not read ratings at all.
        assert "polystream.ratings" not in lag[kafka.consumer_group("mongo")]
    finally:
        delete_groups(settings.kafka, groups)
