"""`polystream simulate` through a throwaway Typer app (the lead wires the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import BulkEventPublisher
from polystream.cli import simulate as cli
from polystream.domain.events import encode
from polystream.domain.examples import example_event
from polystream.settings import Settings

from .test_catalog_import import CSV

app = typer.Typer()
app.command()(cli.simulate)
runner = CliRunner()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> InMemoryBroker:
    broker = InMemoryBroker()

    def open_publisher(settings: Settings, *, ensure_topics: bool) -> BulkEventPublisher:
        return InMemoryEventPublisher(broker)

    monkeypatch.setattr(cli, "open_publisher", open_publisher)
    return broker


def _published(broker: InMemoryBroker) -> list[bytes]:
    if not broker.topics():
        return []
    consumer = InMemoryEventConsumer(broker, "cli-test", list(broker.topics()))
    values: list[bytes] = []
    while batch := consumer.poll_batch(10_000, 0.05):
        values.extend(r.value or b"" for r in batch)
    consumer.close()
    return values


def test_out_writes_jsonl_and_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (first, second):
        result = runner.invoke(app, ["--events", "3000", "--seed", "7", "--out", str(path),
                                     "--no-progress"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "total sent" in result.output and "3,000" in result.output
    assert first.read_bytes() == second.read_bytes()  # real argon2 hash included
    assert len(first.read_bytes().splitlines()) == 3000


def test_out_then_from_into_the_in_memory_broker(tmp_path: Path, broker: InMemoryBroker) -> None:
    path = tmp_path / "run.jsonl"
    assert runner.invoke(app, ["-n", "2000", "--out", str(path), "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["--from", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "acked by Kafka" in result.output
    assert sorted(_published(broker)) == sorted(path.read_bytes().splitlines())


def test_from_refuses_a_file_with_invalid_lines(tmp_path: Path, broker: InMemoryBroker) -> None:
    path = tmp_path / "bad.jsonl"
    good = encode(example_event("flag.set"))
    newer = good.replace(b'"schema_version":2', b'"schema_version":9')
    assert newer != good
    path.write_bytes(good + b"\n{oops\n" + newer + b"\n")
    result = runner.invoke(app, ["--from", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "2 invalid line(s) out of 3; nothing was published" in result.output
    assert "line 2: malformed" in result.output
    assert "line 3: unsupported_version" in result.output
    assert _published(broker) == []

    result = runner.invoke(app, ["--from", str(path), "--skip-invalid", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert _published(broker) == [good]


def test_a_publish_failure_stops_with_a_clear_error(broker: InMemoryBroker) -> None:
    broker.fail_next_publishes(1, "broker went away")
    result = runner.invoke(app, ["-n", "20000", "--titles", "5", "--no-progress"])
    assert result.exit_code == 1
    assert "publish failed, run stopped" in result.output
    assert "broker went away" in result.output


def test_catalog_import_from_the_command_line(tmp_path: Path) -> None:
    good = tmp_path / "catalog.csv"
    good.write_text(CSV, encoding="utf-8")
    out = tmp_path / "catalog.jsonl"
    result = runner.invoke(app, ["--catalog", str(good), "--catalog-only", "--out", str(out),
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "catalog.title_upserted" in result.output
    assert out.read_bytes().count(b'"type":"catalog.title_upserted"') == 5

    bad = tmp_path / "bad.csv"
    bad.write_text(CSV.replace("1998", "1776"), encoding="utf-8")
    result = runner.invoke(app, ["--catalog", str(bad), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2
    assert "catalogue refused" in result.output
    assert "row 1 (line 2), field 'year': Input should be greater than or equal to 1888" in (
        result.output.replace("\n", " ").replace("  ", " ")
    )


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    assert runner.invoke(app, ["--start", "yesterday", "--out", out]).exit_code == 2
    assert runner.invoke(app, ["--start", "2099-01-01", "--out", out]).exit_code == 2
    assert runner.invoke(app, ["--skip-invalid", "--out", out]).exit_code == 2
    assert runner.invoke(app, ["--heartbeat", "0", "--out", out]).exit_code == 2
