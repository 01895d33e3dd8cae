"""Logs, trace context helpers, the worker metrics server and the observability settings."""

from __future__ import annotations

import io
import json
import logging
import socket
import urllib.request
from collections.abc import Iterator

import pytest
import structlog

from polystream.bus.ports import Record
from polystream.observe import logs
from polystream.observe.metrics import start_worker_metrics
from polystream.observe.tracing import event_headers, log_consumed, trace_id_of, traceparent
from polystream.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Configure structlog JSON logs into a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("DEBUG", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_traceparent_parsing_follows_w3c() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(f"00-{trace_id}-00f067aa0ba902b7-01") == trace_id
    assert trace_id_of(f" 00-{trace_id.upper()}-00f067aa0ba902b7-00 ") == trace_id
    for bad in (None, "", "garbage", f"ff-{trace_id}-00f067aa0ba902b7-01",
                f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{trace_id}-{'0' * 16}-01",
                f"00-{trace_id[:-1]}-00f067aa0ba902b7-01"):
        assert trace_id_of(bad) is None, bad
    made = traceparent(trace_id)
    assert trace_id_of(made) == trace_id and made != traceparent(trace_id)
    headers = event_headers(trace_id, "e-1")
    assert trace_id_of(headers["traceparent"].decode()) == trace_id
    assert headers["event_id"] == b"e-1"


def test_json_logs_carry_bound_trace_ids_and_never_secrets(json_lines: io.StringIO) -> None:
    log = logging.getLogger("polystream.test")
    with logs.bound(trace_id="abc123", event_id="e-9"):
        log.info("accepted %s", "user.registered", extra={"event_type": "user.registered"})
        structlog.get_logger("polystream.test").info(
            "login", password="hunter2", user_email="a@b.c", operator_token="t")
    log.info("outside")
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert lines[0]["event"] == "accepted user.registered"
    assert lines[0]["trace_id"] == "abc123" and lines[0]["event_id"] == "e-9"
    assert lines[0]["event_type"] == "user.registered"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "polystream.test"
    assert "timestamp" in lines[0]
    assert "hunter2" not in json_lines.getvalue() and "a@b.c" not in json_lines.getvalue()
    assert lines[1]["password"] == "[redacted]" and lines[1]["user_email"] == "[redacted]"
    assert "trace_id" not in lines[2]


def test_chatty_client_loggers_are_quiet_at_info(json_lines: io.StringIO) -> None:
    logging.getLogger("opensearch").info("POST /_bulk [status:200 request:0.01s]")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade")
    logging.getLogger("opensearch").warning("cluster yellow")
    text = json_lines.getvalue()
    assert "_bulk" not in text and "Running upgrade" not in text
    assert "cluster yellow" in text


def test_consumed_records_are_logged_with_their_trace_at_debug(json_lines: io.StringIO) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    records = [Record("polystream.users", 2, 41, b"k", b"{}", event_headers(trace_id, "e-7")),
               Record("polystream.users", 2, 42, b"k", b"{}")]  # no context: no line
    log_consumed("sink postgres", records)
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["trace_id"] == trace_id and lines[0]["event_id"] == "e-7"
    assert lines[0]["event"] == "sink postgres consumed polystream.users[2]@41"


def test_worker_metrics_serve_and_a_taken_port_only_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    assert start_worker_metrics("127.0.0.1", port) is True
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"polystream_http_request_seconds" in response.read()
    with caplog.at_level(logging.WARNING, "polystream.metrics"):
        assert start_worker_metrics("127.0.0.1", port) is False
    assert f"metrics port 127.0.0.1:{port} is taken" in caplog.text
    assert start_worker_metrics("127.0.0.1", 0) is False


def test_observability_settings_defaults_and_log_format() -> None:
    settings = Settings(_env_file=None)
    assert settings.observability.metrics_port == 9464
    assert settings.observability.metrics_host == "127.0.0.1"
    assert settings.log_format() == "console"
    assert Settings(_env_file=None, environment="prod").log_format() == "json"
    chosen = Settings(_env_file=None, environment="prod",
                      observability={"log_format": "console", "metrics_port": 0})
    assert chosen.log_format() == "console" and chosen.observability.metrics_port == 0


def test_the_grafana_dashboard_uses_only_metrics_the_code_exports() -> None:
    import re
    from pathlib import Path

    from prometheus_client import REGISTRY

    import polystream.audit.worker
    import polystream.observe.lag
    import polystream.observe.metrics
    import polystream.runtime.loop
    import polystream.sinks.worker  # noqa: F401  (each registers its metrics)

    exported: set[str] = set()
    for family in REGISTRY.collect():
        exported |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_sum",
                                                          "_count")}
    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana" / "polystream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"polystream_[a-z_]+", expr)}
    assert len(used) >= 12
    assert used <= exported, used - exported
