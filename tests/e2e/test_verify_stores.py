"""`polystream verify` over the four stores, on the real stack (issue 12, item 3).

One isolated deployment (`worker all` in its own databases, key prefix and audit indices)
drains a small simulated run. Verify must find it whole, from the file and from the topics;
then each kind of damage, done by hand to one store and undone afterwards, must be found with
a line that names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from bson import Binary
from pymongo import MongoClient

from polystream.audit.documents import bucket_for_event
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.bus.admin import ensure_topics, group_lag, start_group_at_end
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.topology import Topic, topic_specs, topics_for
from polystream.chaos.deployment import Deployment
from polystream.chaos.processes import PolystreamProcess
from polystream.cli.verify import VerifyError, VerifyRun, report, run_checks, run_verify
from polystream.domain.events import AnyEvent, Sink, TitleUpserted, UserRegistered, decode
from polystream.settings import Settings
from polystream.simulate import SimConfig, generate, read_recorded
from polystream.stores.catalog_layout import ASSET_CHUNKS, ASSET_FILES

pytestmark = [pytest.mark.stack]

N_EVENTS = 500
#: Small enough to drain in seconds, large enough for every kind of store content (users,
#: sessions, posters, flags, payments).
SIM = SimConfig(seed=7, users=20, titles=20)
DRAIN_TIMEOUT_S = 60.0
POISON = b"not an event at all"


@dataclass
class Drained:
    settings: Settings
    deployment: Deployment
    path: Path
    events: list[AnyEvent]
    published_at: datetime

    def check(self) -> VerifyRun:
        return run_checks(self.path, self.settings)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "polystream", "verify", *args],
                              env=self.deployment.env(), capture_output=True, text=True,
                              timeout=120)


def _lag(settings: Settings) -> int:
    return sum(sum(group_lag(settings.kafka, settings.kafka.consumer_group(sink.value),
                             [t.value for t in topics_for(sink)]).values()) for sink in Sink)


@pytest.fixture(scope="module")
def drained(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drained]:
    tmp = tmp_path_factory.mktemp("verify")
    path = tmp / "events.jsonl"
    with path.open("wb") as out:
        for ev in generate(SIM, limit=N_EVENTS):
            out.write(ev.value + b"\n")
    deployment = Deployment(f"verify-{uuid.uuid4().hex[:6]}")
    deployment.create(settings)
    local = deployment.settings(settings)
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    for sink in Sink:
        start_group_at_end(local.kafka, local.kafka.consumer_group(sink.value),
                           [t.value for t in topics_for(sink)])
    # Producer timestamps have millisecond precision; the broker's clock is this host's.
    published_at = datetime.now(UTC) - timedelta(milliseconds=5)
    pub = KafkaEventPublisher(settings.kafka, client_id="polystream-verify-test")
    try:
        for ev in read_recorded(path):
            pub.publish_fire(ev.topic, ev.key, ev.value)
        # Poison: every sink dead-letters it, and the audit must hold the dead letter.
        pub.publish_fire(Topic.USERS.value, "poison", POISON)
        pub.flush(60)
    finally:
        pub.close(30)
    proc = PolystreamProcess(["worker", "all", "--metrics-port", "0"], env=deployment.env(),
                             log=tmp / "worker.log")
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _lag(local) and time.monotonic() < deadline:
            time.sleep(1)
        assert _lag(local) == 0, (tmp / "worker.log").read_text()[-2000:]
        events = [decode(ev.value) for ev in read_recorded(path)]
        yield Drained(local, deployment, path, events, published_at)
    finally:
        proc.terminate()
        if proc.wait(30) is None:
            proc.kill()
        deployment.drop(settings)


def _bad(run: VerifyRun) -> list[str]:
    return [f"{d.store}/{d.part}: {s}" for d in run.diffs for s in d.samples]


def _damaged(drained: Drained, store: str, part: str, words: str) -> str:
    run = drained.check()
    bad = _bad(run)
    assert bad, "the damage was not found"
    line = next((b for b in bad if b.startswith(f"{store}/{part}: ") and words in b), None)
    assert line is not None, bad
    return line


def test_a_drained_run_matches_in_all_four_stores(drained: Drained) -> None:
    run = drained.check()
    assert _bad(run) == []
    checked = {(d.store, d.part) for d in run.diffs}
    assert {("postgres", "users"), ("mongo", "assets.files"), ("mongo", "gridfs"),
            ("redis", "keys"), ("audit", "documents")} <= checked
    audit = next(d for d in run.diffs if d.store == "audit")
    assert audit.expected == audit.actual == len(drained.events)
    gridfs = next(d for d in run.diffs if d.part == "gridfs")
    assert gridfs.expected == gridfs.actual > 0  # the run uploaded posters
    # The function the chaos drills call keeps its shape.
    diffs, _, count = run_verify(drained.path, drained.settings)
    assert count == len(drained.events) and all(d.ok for d in diffs)


def test_the_topics_give_the_same_answer_as_the_file(drained: Drained) -> None:
    done = drained.cli("--from-topics", "--since", drained.published_at.isoformat(), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True, result
    assert (result["events"], result["skipped_records"]) == (len(drained.events), 1)
    assert result["exact"] is True  # the deployment holds these events only: all compared
    assert result["skipped_records"] == 1  # the poison, whose dead letter the audit holds
    assert result["stores"]["audit"]["found"] == len(drained.events) + 1  # + the dead letter


def test_the_json_report_names_the_damage_and_exits_1(drained: Drained) -> None:
    result = report(drained.check())
    assert result["ok"] is True
    assert set(result["stores"]) == {"postgres", "mongo", "redis", "audit"}
    assert result["stores"]["audit"]["found"] == len(drained.events)
    with _redis_key_removed(drained) as key:
        done = drained.cli(str(drained.path), "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["ok"] is False
        assert result["stores"]["redis"]["missing"] == 1
        assert result["stores"]["redis"]["ok"] is False
        assert result["stores"]["postgres"]["ok"] is True
        samples = [s for p in result["parts"] for s in p["samples"]]
        assert samples == [f"missing {key}"]


def test_unusable_input_exits_2_in_one_line(drained: Drained, tmp_path: Path) -> None:
    done = drained.cli(str(tmp_path / "absent.jsonl"))
    assert done.returncode == 2
    assert "no such file" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = drained.cli(str(drained.path), "--from-topics", "--json")
    assert done.returncode == 2
    assert "either an event file or --from-topics" in json.loads(done.stdout)["error"]
    away = drained.settings.model_copy(update={"opensearch": drained.settings.opensearch.model_copy(
        update={"url": "http://127.0.0.1:1", "timeout_s": 2.0})})
    with pytest.raises(VerifyError) as caught:
        run_checks(drained.path, away)
    assert str(caught.value).startswith("audit index (http://127.0.0.1:1): ")
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ damage


def _audit(drained: Drained) -> OpenSearchAuditIndex:
    return OpenSearchAuditIndex(drained.settings.opensearch)


def _some_event(drained: Drained, kind: type[Any]) -> AnyEvent:
    return next(e for e in drained.events if isinstance(e.payload, kind))


def _first_user(drained: Drained) -> UserRegistered:
    payload = _some_event(drained, UserRegistered).payload
    assert isinstance(payload, UserRegistered)
    return payload


def _first_title(drained: Drained) -> TitleUpserted:
    payload = _some_event(drained, TitleUpserted).payload
    assert isinstance(payload, TitleUpserted)
    return payload


def test_a_deleted_audit_document_is_missing(drained: Drained) -> None:
    index = _audit(drained)
    env = _some_event(drained, UserRegistered)
    name, doc_id = index.index_name(bucket_for_event(env.event_id)), str(env.event_id)
    source = index.client.get(index=name, id=doc_id)["_source"]
    index.client.delete(index=name, id=doc_id, params={"refresh": "true"})
    try:
        line = _damaged(drained, "audit", "documents", "missing")
        assert line == f"audit/documents: missing audit document of {env.type} {doc_id}"
    finally:
        index.client.index(index=name, id=doc_id, body=source, params={"refresh": "true"})
        index.close()


def test_a_duplicated_audit_document_is_found(drained: Drained) -> None:
    index = _audit(drained)
    env = _some_event(drained, UserRegistered)
    doc_id = str(env.event_id)
    source = index.client.get(index=index.index_name(bucket_for_event(env.event_id)),
                              id=doc_id)["_source"]
    copy_index = index.index_name("undated")
    index.client.index(index=copy_index, id=doc_id, body=source, params={"refresh": "true"})
    try:
        line = _damaged(drained, "audit", "documents", "duplicated")
        assert f"duplicated audit document of {doc_id}: 2" in line
        assert f"{copy_index}/{doc_id}" in line
    finally:
        index.client.delete(index=copy_index, id=doc_id, params={"refresh": "true"})
        index.close()


def _mongo(drained: Drained) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(drained.settings.mongo.url)
    return client, client[drained.settings.mongo.database]


def test_an_orphaned_chunk_is_found(drained: Drained) -> None:
    client, db = _mongo(drained)
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    db[ASSET_CHUNKS].insert_one({"_id": ghost, "files_id": ghost, "n": 0,
                                 "data": Binary(b"nobody's")})
    try:
        line = _damaged(drained, "mongo", "gridfs", "orphaned")
        assert line == f"mongo/gridfs: orphaned chunk(s) of {ghost}: n=[0], no files doc"
    finally:
        db[ASSET_CHUNKS].delete_one({"_id": ghost})
        client.close()


def test_a_poster_missing_a_chunk_is_found(drained: Drained) -> None:
    client, db = _mongo(drained)
    poster = db[ASSET_FILES].find_one({"metadata.kind": "poster"})
    assert poster is not None
    chunk = db[ASSET_CHUNKS].find_one({"files_id": poster["_id"], "n": 0})
    assert chunk is not None
    db[ASSET_CHUNKS].delete_one({"_id": chunk["_id"]})
    try:
        line = _damaged(drained, "mongo", "gridfs", str(poster["_id"]))
        assert f"file {poster['_id']} has chunks" in line and "missing n=[0]" in line
    finally:
        db[ASSET_CHUNKS].insert_one(chunk)
        client.close()


class _redis_key_removed:
    """Remove one of the run's Redis keys (a user's), put it back on exit."""

    def __init__(self, drained: Drained) -> None:
        self.r = redis.Redis.from_url(drained.settings.redis.url)
        user = _first_user(drained)
        prefix = drained.settings.redis.key_prefix
        keys = sorted(k.decode() for k in self.r.scan_iter(f"{prefix}:*{user.user_id}*"))
        assert keys, "the run left no Redis key of its first user"
        self.full: str = keys[0]
        self.key: str = self.full[len(prefix) + 1:]
        self.saved: bytes | None = None
        self.ttl = 0

    def __enter__(self) -> str:
        self.saved = self.r.dump(self.full)
        self.ttl = max(int(self.r.pttl(self.full)), 0)
        self.r.delete(self.full)
        return self.key

    def __exit__(self, *_: object) -> None:
        assert self.saved is not None
        self.r.restore(self.full, self.ttl, self.saved, replace=True)
        self.r.close()


def test_a_removed_redis_key_is_missing(drained: Drained) -> None:
    with _redis_key_removed(drained) as key:
        line = _damaged(drained, "redis", "keys", "missing")
        assert line == f"redis/keys: missing {key}"


def test_a_changed_postgres_row_differs(drained: Drained) -> None:
    user = _first_user(drained)
    with psycopg.connect(drained.settings.postgres.dsn(), autocommit=True) as conn:
        (before,) = conn.execute("SELECT display_name FROM users WHERE user_id = %s",
                                 (user.user_id,)).fetchone() or (None,)
        conn.execute("UPDATE users SET display_name = 'Mallory' WHERE user_id = %s",
                     (user.user_id,))
        try:
            line = _damaged(drained, "postgres", "users", "differs")
            assert line.startswith(f"postgres/users: differs {user.user_id}")
            assert "Mallory" in line
        finally:
            conn.execute("UPDATE users SET display_name = %s WHERE user_id = %s",
                         (before, user.user_id))


def test_a_title_changed_in_mongo_is_stale(drained: Drained) -> None:
    title = _first_title(drained)
    client, db = _mongo(drained)
    before = db["titles"].find_one({"_id": title.title_id})
    assert before is not None
    db["titles"].update_one({"_id": title.title_id}, {"$set": {"version": 10**6}})
    try:
        run = drained.check()
        mongo = next(d for d in run.diffs if (d.store, d.part) == ("mongo", "titles"))
        assert mongo.stale == 1 and report(run)["stores"]["mongo"]["stale"] == 1
    finally:
        db["titles"].replace_one({"_id": title.title_id}, before)
        client.close()



def test_every_damage_was_undone(drained: Drained) -> None:
    """Each damage test puts the store back: the next one must see only its own damage."""
    assert _bad(drained.check()) == []
