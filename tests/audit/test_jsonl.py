"""What only the JSONL index has to get right: files, crashes, readers, erasure on disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polystream.audit.documents import event_document
from polystream.audit.jsonl import JsonlAuditIndex
from polystream.audit.ports import AuditIndexError

from .conftest import SECRET, event_at

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def _open(folder: Path, **kwargs: object) -> JsonlAuditIndex:
    index = JsonlAuditIndex(folder, fsync=False, **kwargs)  # type: ignore[arg-type]
    index.ensure()
    return index


def _disk(folder: Path) -> str:
    return "".join(path.read_text() for path in sorted(folder.glob("*.jsonl")))


def test_documents_survive_a_restart_and_files_are_monthly(tmp_path: Path) -> None:
    events = [event_at("rating.submitted", T0 + timedelta(days=30 * i)) for i in range(3)]
    writer = _open(tmp_path)
    assert writer.index_batch([event_document(e, None, secret=SECRET) for e in events]) == []
    writer.close()
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [
        "events-2025.03.0.jsonl", "events-2025.04.0.jsonl", "events-2025.05.0.jsonl"]
    line = json.loads((tmp_path / "events-2025.03.0.jsonl").read_text().splitlines()[0])
    assert line["doc_id"] == str(events[0].event_id) and line["payload"]["stars"] == 4
    again = _open(tmp_path)
    assert again.count() == 3
    assert again.get(events[1].event_id) is not None


def test_one_writer_at_a_time_and_readers_follow_it(tmp_path: Path) -> None:
    writer = _open(tmp_path)
    with pytest.raises(AuditIndexError):
        _open(tmp_path)
    reader = JsonlAuditIndex(tmp_path, read_only=True)
    assert reader.count() == 0
    first = event_at("rating.submitted", T0)
    writer.index_batch([event_document(first, None, secret=SECRET)])
    assert reader.count() == 1
    second = event_at("rating.submitted", T0 + timedelta(minutes=1))
    writer.index_batch([event_document(second, None, secret=SECRET)])
    assert [i.doc_id for i in reader.search().items] == [str(second.event_id),
                                                           str(first.event_id)]
    with pytest.raises(AuditIndexError):
        reader.index_batch([event_document(first, None, secret=SECRET)])
    writer.erase_user(first.payload.user_id)  # compaction: the reader reloads
    assert reader.erased_users([first.payload.user_id]) == {first.payload.user_id}
    assert all(item.erased for item in reader.search().items)


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    env = event_at("rating.submitted", T0)
    writer = _open(tmp_path)
    writer.index_batch([event_document(env, None, secret=SECRET)])
    writer.close()
    segment = tmp_path / "events-2025.03.0.jsonl"
    with segment.open("ab") as handle:
        handle.write(b'{"doc_id": "half a doc')
    reader = JsonlAuditIndex(tmp_path, read_only=True)
    assert reader.count() == 1
    reopened = _open(tmp_path)
    assert segment.read_bytes().endswith(b"}\n")
    later = event_at("rating.submitted", T0 + timedelta(minutes=1))
    reopened.index_batch([event_document(later, None, secret=SECRET)])
    reopened.close()
    assert _open(tmp_path).count() == 2


def test_erasure_leaves_nothing_of_the_user_on_disk(tmp_path: Path) -> None:
    writer = _open(tmp_path)
    mine = event_at("rating.submitted", T0, user_id="on-disk-user")
    other = event_at("rating.submitted", T0, user_id="someone-else")
    for _ in range(3):  # several versions of the line on disk
        writer.index_batch([event_document(mine, None, secret=SECRET, now=T0),
                            event_document(other, None, secret=SECRET, now=T0)])
    writer.index_batch([event_document(mine, None, secret=SECRET, now=T0 - timedelta(1))])
    assert "on-disk-user" in _disk(tmp_path)
    assert writer.erase_user("on-disk-user") == 1
    assert "on-disk-user" not in _disk(tmp_path)
    assert "someone-else" in _disk(tmp_path)
    writer.close()
    reopened = _open(tmp_path)
    record = reopened.get(mine.event_id)
    assert record is not None and record.erased
    assert reopened.erased_users(["on-disk-user"]) == {"on-disk-user"}


def test_an_interrupted_compaction_is_finished_by_the_next_writer(tmp_path: Path) -> None:
    writer = _open(tmp_path)
    env = event_at("rating.submitted", T0, user_id="half-erased")
    writer.index_batch([event_document(env, None, secret=SECRET)])
    writer.close()
    old = (tmp_path / "events-2025.03.0.jsonl").read_text()
    doc = json.loads(old)
    doc.pop("payload")
    doc["erased"] = True
    # The compacted segment made it to disk; the crash came before the old one was deleted.
    (tmp_path / "events-2025.03.1.jsonl").write_text(
        '{"compacted":true}\n' + json.dumps(doc) + "\n")
    reader = JsonlAuditIndex(tmp_path, read_only=True)
    record = reader.get(env.event_id)
    assert record is not None and record.erased  # readers already ignore the old segment
    _open(tmp_path)
    assert not (tmp_path / "events-2025.03.0.jsonl").exists()


def test_segments_roll_over_and_retention_deletes_files(tmp_path: Path) -> None:
    writer = _open(tmp_path, max_segment_bytes=2000, retention_days=30)
    for i in range(10):
        env = event_at("rating.submitted", T0 + timedelta(minutes=i))
        writer.index_batch([event_document(env, None, secret=SECRET)])
    segments = sorted(tmp_path.glob("events-2025.03.*.jsonl"))
    assert len(segments) > 2
    assert all(p.stat().st_size < 4000 for p in segments)
    assert writer.count() == 10
    writer.close()
    writer = _open(tmp_path, retention_days=30)
    assert writer.count() == 10
    assert writer.apply_retention(datetime(2025, 6, 1, tzinfo=UTC)) == ["2025.03"]
    assert list(tmp_path.glob("events-*")) == []


def test_the_retention_comes_from_the_settings(tmp_path: Path) -> None:
    from polystream.bootstrap import open_audit_index
    from polystream.settings import Settings

    settings = Settings.model_validate(
        {"opensearch": {"enabled": False, "retention_days": 7}})
    index = open_audit_index(settings, jsonl_dir=tmp_path)
    try:
        assert index.retention_days == 7  # type: ignore[attr-defined]
        bucket = "2026.01"
        assert index.apply_retention(datetime(2026, 2, 7, tzinfo=UTC)) == []
        january = datetime(2026, 1, 5, tzinfo=UTC)
        index.index_batch([event_document(event_at("user.registered", january), None,
                                          secret=SECRET, now=january)])
        assert index.apply_retention(datetime(2026, 2, 7, 0, 0, 1, tzinfo=UTC)) == []
        assert index.apply_retention(datetime(2026, 2, 8, tzinfo=UTC)) == [bucket]
    finally:
        index.close()
    with pytest.raises(ValueError):
        Settings.model_validate({"opensearch": {"retention_days": 0}})
