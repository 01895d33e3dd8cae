"""`polystream lag` and the worker's metrics port (settings, option, off)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from polystream.bus.ports import BusError
from polystream.cli import app as polystream_app
from polystream.cli import lag as lag_cli
from polystream.cli import worker as worker_cli
from polystream.observe import logs
from polystream.observe.lag import GroupLag

GROUPS = [
    GroupLag("postgres", "polystream-postgres", {("polystream.users", 0): 3,
                                                 ("polystream.users", 1): 4,
                                                 ("polystream.ratings", 0): 0}),
    GroupLag("redis", "polystream-redis", {("polystream.playback", 7): 1_234_567}),
]


def test_lag_prints_each_group_per_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lag_cli, "read_lag", lambda settings, sinks: GROUPS)
    result = CliRunner().invoke(polystream_app, ["lag"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "polystream-" in line]
    assert any("polystream-postgres" in r and "polystream.users" in r and " 7 " in r
               for r in rows), result.output
    assert any("polystream-redis" in r and "1,234,567" in r for r in rows), result.output

    per_partition = CliRunner().invoke(polystream_app, ["lag", "--partitions"],
                                       env={"COLUMNS": "200"})
    assert any("polystream.users" in r and " 1 " in r and " 4 " in r
               for r in per_partition.output.splitlines()), per_partition.output


def test_lag_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lag_cli, "read_lag", lambda settings, sinks: GROUPS)
    result = CliRunner().invoke(polystream_app, ["lag", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "polystream-postgres": {
            "polystream.ratings": {"lag": 0, "partitions": {"0": 0}},
            "polystream.users": {"lag": 7, "partitions": {"0": 3, "1": 4}}},
        "polystream-redis": {"polystream.playback": {"lag": 1_234_567,
                                                     "partitions": {"7": 1_234_567}}},
    }


def test_lag_without_kafka_exits_1_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(settings: Any, sinks: Any) -> list[GroupLag]:
        raise BusError("listing topics failed: timed out")

    monkeypatch.setattr(lag_cli, "read_lag", unreachable)
    result = CliRunner().invoke(polystream_app, ["lag"])
    assert result.exit_code == 1
    assert "lag unavailable: listing topics failed: timed out" in result.output


@pytest.fixture
def worker_app(monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, list[Any]]:
    seen: list[Any] = []

    class Idle:
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def install_signal_handlers(self, escalate: bool = True) -> None: ...
        def run(self) -> int:
            return 0

    def no_metrics(host: str, port: int) -> bool:
        seen.append((host, port))
        return False

    monkeypatch.setattr(worker_cli, "start_worker_metrics", no_metrics)
    monkeypatch.setattr(worker_cli, "Supervisor", Idle)
    monkeypatch.setattr(worker_cli, "exit_process", lambda code: seen.append(("exit", code)))
    monkeypatch.setattr(logs, "configure", lambda *args: None)  # the module worker_cli uses
    app = typer.Typer()
    app.command()(worker_cli.worker)
    return app, seen


def test_worker_metrics_port_comes_from_settings_unless_the_option_says(
        worker_app: tuple[typer.Typer, list[Any]]) -> None:
    app, seen = worker_app
    env = {"POLYSTREAM_OBSERVABILITY__METRICS_PORT": "19464",
           "POLYSTREAM_OBSERVABILITY__METRICS_HOST": "0.0.0.0"}
    assert CliRunner().invoke(app, ["redis"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["redis", "--metrics-port", "0"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["redis", "--metrics-port", "9100"], env=env).exit_code == 0
    assert [s for s in seen if s[0] != "exit"] == [
        ("0.0.0.0", 19464), ("0.0.0.0", 0), ("0.0.0.0", 9100)]
