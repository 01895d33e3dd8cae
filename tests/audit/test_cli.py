"""`polystream audit …` on a JSONL folder (and, with -m stack, a backfill into OpenSearch)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from polystream.audit.documents import event_document, lineage_update
from polystream.audit.jsonl import JsonlAuditIndex
from polystream.cli.audit import app, parse_when
from polystream.domain.events import Receipt, ReceiptStatus, Sink
from polystream.settings import Settings

from .conftest import SECRET, event_at

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
JSONL_ENV = {"POLYSTREAM_OPENSEARCH__ENABLED": "false", "COLUMNS": "250"}


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, list[Any]]:
    index = JsonlAuditIndex(tmp_path / "audit", fsync=False)
    events = [event_at("rating.submitted", T0 + timedelta(minutes=i), user_id=f"cli-{i % 2}")
              for i in range(6)]
    index.index_batch([event_document(env, None, secret=SECRET) for env in events])
    index.index_batch([lineage_update(Receipt(
        event_id=events[0].event_id, event_type=events[0].type, sink=Sink.POSTGRES,
        status=ReceiptStatus.REJECTED, reason="title unknown", processed_at=T0))])
    index.close()
    return tmp_path / "audit", events


def test_search_prints_a_table_and_json(folder: tuple[Path, list[Any]]) -> None:
    path, events = folder
    runner = CliRunner()
    table = runner.invoke(app, ["search", "--jsonl-dir", str(path), "--user", "cli-0"],
                          env=JSONL_ENV)
    assert table.exit_code == 0, table.output
    assert "rating.submitted" in table.output and "3 of 3" in table.output
    assert "postgres✗" in table.output
    lines = runner.invoke(app, ["search", "--jsonl-dir", str(path), "--json", "--limit", "4",
                                "--since", T0.isoformat(), "--until", "2025-03-10T12:05:00Z"],
                          env=JSONL_ENV)
    assert lines.exit_code == 0, lines.output
    rows = [json.loads(line) for line in lines.stdout.splitlines() if line.startswith("{")]
    assert [row["event_id"] for row in rows] == [str(e.event_id) for e in events[4::-1]][:4]


def test_show_prints_the_lineage(folder: tuple[Path, list[Any]]) -> None:
    path, events = folder
    result = CliRunner().invoke(app, ["show", str(events[0].event_id), "--jsonl-dir",
                                      str(path)], env=JSONL_ENV)
    assert result.exit_code == 0, result.output
    assert "title unknown" in result.output and "rejected" in result.output
    missing = CliRunner().invoke(app, ["show", "0194a1b2-0000-7000-8000-00000000dead",
                                       "--jsonl-dir", str(path)], env=JSONL_ENV)
    assert missing.exit_code == 1


def test_times_are_iso_or_durations_ago() -> None:
    now = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
    assert parse_when("2h", now=now) == now - timedelta(hours=2)
    assert parse_when("7d", now=now) == now - timedelta(days=7)
    assert parse_when("2025-01-01T00:00:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_when("2025-01-01T01:00:00+01:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_when(None) is None


@pytest.mark.stack
def test_a_jsonl_folder_backfills_opensearch(folder: tuple[Path, list[Any]], settings: Settings,
                                             unique: str) -> None:
    from polystream.audit.opensearch import OpenSearchAuditIndex

    path, events = folder
    prefix = f"test-audit-cli-{unique}"
    env = {"POLYSTREAM_OPENSEARCH__INDEX_PREFIX": prefix, "COLUMNS": "250"}
    target = OpenSearchAuditIndex(settings.opensearch.model_copy(
        update={"index_prefix": prefix}))
    try:
        for _ in range(2):  # idempotent
            result = CliRunner().invoke(app, ["import-jsonl", str(path)], env=env)
            assert result.exit_code == 0, result.output
        target.refresh()
        assert target.count() == len(events)
        record = target.get(events[0].event_id)
        source = JsonlAuditIndex(path, read_only=True).get(events[0].event_id)
        assert record is not None and source is not None
        assert record.model_dump(exclude={"indexed_at"}) == source.model_dump(
            exclude={"indexed_at"})
        shown = CliRunner().invoke(app, ["search", "--user", "cli-1"], env=env)
        assert shown.exit_code == 0 and "3 of 3" in shown.output
    finally:
        target.drop_everything()
        target.close()
