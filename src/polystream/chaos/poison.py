"""The poison drill: while valid simulated events are published at a steady rate and one
`polystream worker all` of an isolated deployment drains them, records that can never apply
are produced on every topic the workers read; each must reach the dead-letter topic exactly
once, with its reason, and no partition may stall behind one.

The kinds, each refused by a different check of the consumer (`domain.events.codec.decode`;
the receipts topic: the auditor's receipt model):

    not_json          bytes that are not JSON                        -> malformed
    not_object        a JSON array                                   -> malformed
    unknown_type      an object whose type no build knows            -> unknown_type
    future_version    a known type with a schema_version not read    -> unsupported_version
    no_event_id       a known type without its event_id              -> validation
    bad_payload       a known type whose payload breaks its model    -> validation
    key_mismatch      a valid event whose key is not its aggregate's -> validation
    card_number       a valid event with a card number in a free-text
                      or id field of its payload                     -> validation

All eight go on every event topic (users, subscriptions, sessions, playback, ratings,
catalog, flags); the known-type kinds start from a valid event of that topic (a template from
another simulated run, with a fresh event id). When the audit is enabled, the receipts topic
gets `not_json`, `not_object` and `not_receipt` (an object that is no receipt): its only
reader, the auditor, dead-letters them as `malformed`. The dead-letter topic itself is not
poisoned: the auditor indexes what it reads there and never dead-letters it again (a loop).

A `card_number` record must leave the card number nowhere the platform keeps it about the
record: not in the dead letter's headers (the reason's detail names the field, never its
value) and not in the audit index's dead-letter document (size, keyed hash, the JSON's shape).
The dead letter's *value* is the original bytes, verbatim, by design (docs/audit.md, Privacy:
the dead-letter topic keeps what came, for a replay after a fix; the audit never stores it), so
it is not searched.

The rule checked: exactly one dead letter per poison record, whichever groups read its topic,
with the expected `dlq.reason` and `dlq.consumer` = the topic's primary sink
(`bus.topology.primary_sink`; the auditor for receipts); every other group reading the topic
skips it. The stall of a partition is, for each poison record on it and each group reading its
topic, the time from the record's acknowledgement by Kafka to that group's committed offset
passing it (sampled every `SAMPLE_S`); the drill takes the longest. Then `verify` on the valid
events (lost / duplicated / stale all 0).
"""

from __future__ import annotations

import functools
import json
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, TopicPartition

from polystream.bus.admin import GroupOffsets, end_offsets, ensure_topics
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.ports import Delivered
from polystream.bus.topology import (
    DeadLetterHeader,
    Topic,
    primary_sink,
    topic_of,
    topic_specs,
    topics_for,
)
from polystream.chaos.backlog import Log, _deployments
from polystream.chaos.kill import _sinks
from polystream.chaos.outage import _drain_all
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess
from polystream.domain.events import Sink
from polystream.settings import KafkaSettings, Settings
from polystream.shred import wrap_publisher
from polystream.simulate import SimConfig, generate, read_recorded

#: The event topics (one per family); the receipts topic is added when the audit runs.
EVENT_TOPICS = (Topic.USERS, Topic.SUBSCRIPTIONS, Topic.SESSIONS, Topic.PLAYBACK,
                Topic.RATINGS, Topic.CATALOG, Topic.FLAGS)
#: kind -> the dlq.reason it must carry.
EVENT_KINDS: dict[str, str] = {
    "not_json": "malformed",
    "not_object": "malformed",
    "unknown_type": "unknown_type",
    "future_version": "unsupported_version",
    "no_event_id": "validation",
    "bad_payload": "validation",
    "key_mismatch": "validation",
    "card_number": "validation",
}
#: The `card_number` kind's number: a test card, Luhn-valid.
CARD_NUMBER = "4111111111111111"
#: Where it goes in a valid event of each topic: the first of these payload fields the
#: topic's template has, never the envelope key's aggregate id, written as a person would
#: type it (``spaces`` in free text, ``dashes`` in ids, which allow no spaces).
CARD_FIELDS: dict[Topic, tuple[tuple[str, str], ...]] = {
    Topic.USERS: (("display_name", "spaces"),),
    Topic.SUBSCRIPTIONS: (("subscription_id", "dashes"), ("payment_id", "dashes")),
    Topic.SESSIONS: (("session_id", "dashes"),),
    Topic.PLAYBACK: (("viewing_session_id", "dashes"),),
    Topic.RATINGS: (("review", "spaces"), ("title_id", "dashes")),
    Topic.CATALOG: (("synopsis", "spaces"), ("title", "spaces")),
    Topic.FLAGS: (("value", "spaces"),),
}
# The number with any separators a person (or a formatter) might put between its digits.
_CARD_ANYWHERE = re.compile("[^0-9A-Za-z]{0,3}".join(CARD_NUMBER))
RECEIPT_KINDS: dict[str, str] = {
    "not_json": "malformed",
    "not_object": "malformed",
    "not_receipt": "malformed",
}
MAX_STALL_S = 10.0
SAMPLE_S = 0.25


@dataclass
class Poison:
    topic: str
    kind: str
    reason: str  # expected dlq.reason
    consumer: str  # expected dlq.consumer
    groups: tuple[str, ...]  # sinks whose group reads the topic
    produced_at: float = 0.0  # monotonic, when Kafka acknowledged it
    partition: int = -1
    offset: int = -1
    passed: dict[str, float] = field(default_factory=dict)  # sink -> committed past it at
    dead_letters: list[tuple[str, str]] = field(default_factory=list)  # (reason, consumer)
    #: `card_number` only: where the card number was found (or what could not be checked).
    card_leaks: list[str] = field(default_factory=list)

    @property
    def stall_s(self) -> float | None:
        """The longest time a group took to commit past it; None if one never did."""
        if set(self.passed) != set(self.groups):
            return None
        return max(t - self.produced_at for t in self.passed.values())

    @property
    def slowest(self) -> str:
        return max(self.passed, key=lambda g: self.passed[g]) if self.passed else "-"

    @property
    def dead_lettered_right(self) -> bool:
        return self.dead_letters == [(self.reason, self.consumer)]


@dataclass
class PoisonReport:
    events: int
    poisons: list[Poison] = field(default_factory=list)
    drained_s: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)

    @property
    def missing(self) -> list[Poison]:
        return [p for p in self.poisons if not p.dead_letters]

    @property
    def doubled(self) -> list[Poison]:
        return [p for p in self.poisons if len(p.dead_letters) > 1]

    @property
    def wrong(self) -> list[Poison]:
        """Dead-lettered once, but with another reason or by another consumer."""
        return [p for p in self.poisons if len(p.dead_letters) == 1 and not p.dead_lettered_right]

    def stalls(self) -> dict[tuple[str, int], float | None]:
        """(topic, partition) -> longest stall behind a poison record there (None: a group
        never committed past one)."""
        out: dict[tuple[str, int], float | None] = {}
        for p in self.poisons:
            key = (p.topic, p.partition)
            s = p.stall_s
            if s is None or out.get(key, 0.0) is None:
                out[key] = None
            else:
                out[key] = max(out.get(key) or 0.0, s)
        return out

    @property
    def leaked(self) -> list[Poison]:
        """`card_number` records whose number is in a dead letter's headers or the audit."""
        return [p for p in self.poisons if p.card_leaks]

    @property
    def stalled(self) -> list[tuple[str, int]]:
        return [k for k, s in self.stalls().items() if s is None or s > MAX_STALL_S]

    @property
    def ok(self) -> bool:
        return (bool(self.poisons) and not self.missing and not self.doubled and not self.wrong
                and not self.leaked and not self.stalled and self.outcome.ok)

    def table(self) -> str:
        rows = [f"{'topic':<26} {'kinds':>5} {'poison':>6} {'in DLQ once':>11} {'missing':>7} "
                f"{'twice+':>6} {'wrong':>5} {'max stall (group)':>17}  reasons"]
        for topic in dict.fromkeys(p.topic for p in self.poisons):
            mine = [p for p in self.poisons if p.topic == topic]
            stalls = [p.stall_s for p in mine]
            worst = ("never" if any(s is None for s in stalls) else
                     max((p for p in mine), key=lambda p: p.stall_s or 0.0).slowest[:6] + " "
                     + f"{max(s for s in stalls if s is not None):.1f}s")
            reasons = Counter(r for p in mine for r, _ in p.dead_letters)
            rows.append(
                f"{topic:<26} {len({p.kind for p in mine}):>5} {len(mine):>6} "
                f"{sum(p.dead_lettered_right for p in mine):>11} "
                f"{sum(not p.dead_letters for p in mine):>7} "
                f"{sum(len(p.dead_letters) > 1 for p in mine):>6} "
                f"{sum(len(p.dead_letters) == 1 and not p.dead_lettered_right for p in mine):>5} "
                f"{worst:>17}  " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
        return "\n".join(rows)

    def lines(self) -> list[str]:
        stalls = self.stalls()
        measured = [s for s in stalls.values() if s is not None]
        out = [f"events {self.events:,} valid, {len(self.poisons)} poison records on "
               f"{len({p.topic for p in self.poisons})} topics "
               f"({len({p.kind for p in self.poisons})} kinds); drained at {self.drained_s:.1f}s",
               self.table(),
               f"dead letters: {len(self.poisons) - len(self.missing) - len(self.doubled)} "
               f"once, {len(self.missing)} missing, {len(self.doubled)} twice or more, "
               f"{len(self.wrong)} with a wrong reason or consumer",
               f"card numbers: {sum(p.kind == 'card_number' for p in self.poisons)} records, "
               f"found in headers or the audit for {len(self.leaked)}",
               f"partitions with poison {len(stalls)}, longest stall "
               + (f"{max(measured):.1f}s" if measured else "none measured")
               + f" (limit {MAX_STALL_S:.0f}s), stalled {len(self.stalled)}"]
        for p in (self.missing + self.doubled + self.wrong)[:10]:
            out.append(f"  {p.topic}[{p.partition}]@{p.offset} {p.kind}: expected "
                       f"{p.reason} by {p.consumer}, got {p.dead_letters}")
        for p in self.leaked[:10]:
            out.append(f"  {p.topic}[{p.partition}]@{p.offset} card_number: "
                       + "; ".join(p.card_leaks))
        return out + self.outcome.lines()


def _groups_reading(topic: str, sinks: list[Sink]) -> tuple[str, ...]:
    return tuple(s.value for s in sinks if topic in {t.value for t in topics_for(s)})


def _templates(seed: int) -> dict[str, dict[str, Any]]:
    """A valid event (as a JSON object) of every event topic, from a small simulated run."""
    out: dict[str, dict[str, Any]] = {}
    config = SimConfig(seed=seed, users=20, titles=3, posters=False)
    for ev in generate(config, limit=50_000):
        if ev.topic not in out:
            out[ev.topic] = json.loads(ev.value)
        if len(out) == len(EVENT_TOPICS):
            return out
    missing = sorted(t.value for t in EVENT_TOPICS if t.value not in out)
    raise RuntimeError(f"no template event for {', '.join(missing)}")


def has_card_number(text: str) -> bool:
    """Whether `CARD_NUMBER` is in ``text``, whatever separates its digits."""
    return _CARD_ANYWHERE.search(text) is not None


def card_field(template: dict[str, Any]) -> tuple[str, str]:
    """(payload field, its value with the card number) for a template event."""
    payload = template["payload"]
    for name, style in CARD_FIELDS[topic_of(template["type"])]:
        if name in payload:
            groups = [CARD_NUMBER[i:i + 4] for i in range(0, len(CARD_NUMBER), 4)]
            card = ("-" if style == "dashes" else " ").join(groups)
            return name, card if style == "dashes" else f"paid with {card} thanks"
    raise ValueError(f"no field for a card number in {template['type']}")


def _event_poison(kind: str, template: dict[str, Any], tag: str) -> bytes:
    doc = {**template, "event_id": str(uuid.uuid4())}
    if kind == "not_json":
        return f'{{"poison": "{tag}", not json'.encode()
    if kind == "not_object":
        return json.dumps(["poison", tag]).encode()
    if kind == "unknown_type":
        return json.dumps({**doc, "type": "poison.never_registered"}).encode()
    if kind == "future_version":
        return json.dumps({**doc, "schema_version": 999}).encode()
    if kind == "no_event_id":
        return json.dumps({k: v for k, v in doc.items() if k != "event_id"}).encode()
    if kind == "bad_payload":
        return json.dumps({**doc, "payload": {"poison": tag}}).encode()
    if kind == "key_mismatch":
        return json.dumps({**doc, "key": f"poison-{tag}"}).encode()
    if kind == "card_number":
        name, value = card_field(template)
        return json.dumps({**doc, "payload": {**doc["payload"], name: value}}).encode()
    raise ValueError(kind)


def _receipt_poison(kind: str, tag: str) -> bytes:
    if kind == "not_json":
        return f"poison {tag} \xff".encode("latin-1")
    if kind == "not_object":
        return json.dumps([tag]).encode()
    if kind == "not_receipt":
        return json.dumps({"event_id": tag, "status": "poison"}).encode()
    raise ValueError(kind)


def plan(settings: Settings, seed: int, rounds: int = 1) -> list[tuple[Poison, str, bytes]]:
    """Every poison record to produce, ``rounds`` of each kind per topic: (what to expect,
    Kafka key, value). Each has its own random key, so they spread over the partitions."""
    sinks = _sinks(settings)
    templates = _templates(seed)
    out: list[tuple[Poison, str, bytes]] = []
    for topic in EVENT_TOPICS * rounds:
        primary = primary_sink(topic.value)
        assert primary is not None
        template = templates[topic.value]
        assert topic_of(template["type"]) == topic
        for kind, reason in EVENT_KINDS.items():
            tag = uuid.uuid4().hex[:12]
            out.append((Poison(topic.value, kind, reason, primary.value,
                               _groups_reading(topic.value, sinks)),
                        f"poison-{tag}", _event_poison(kind, template, tag)))
    if Sink.AUDIT in sinks:
        for kind, reason in list(RECEIPT_KINDS.items()) * rounds:
            tag = uuid.uuid4().hex[:12]
            out.append((Poison(Topic.RECEIPTS.value, kind, reason, Sink.AUDIT.value,
                               _groups_reading(Topic.RECEIPTS.value, sinks)),
                        f"poison-{tag}", _receipt_poison(kind, tag)))
    return out


def _write_valid(path: Path, seed: int, events: int, users: int) -> None:
    # A small catalogue, so that a short run reaches every event topic.
    config = SimConfig(seed=seed, users=users, titles=20)
    with path.open("wb") as out:
        for ev in generate(config, limit=events):
            out.write(ev.value + b"\n")


def _publish(settings: Settings, path: Path, rate: float,
             schedule: dict[int, list[tuple[Poison, str, bytes]]],
             done: threading.Event, counter: list[int], on_acked: Callable[[Poison], None]) -> None:
    """The valid events at ``rate`` per second; after the i-th, the poison records scheduled
    at i, each awaited (its partition, offset and acknowledgement time)."""
    pub = wrap_publisher(settings, KafkaEventPublisher(
        settings.kafka, client_id="polystream-chaos-poison"), "chaos-poison")
    started = time.monotonic()

    def acked(poison: Poison, fut: Future[Delivered]) -> None:
        d = fut.result()
        poison.produced_at = time.monotonic()
        poison.partition, poison.offset = d.partition, d.offset
        on_acked(poison)

    try:
        for i, ev in enumerate(read_recorded(path)):
            pub.publish_fire(ev.topic, ev.key, ev.value)
            counter[0] += 1
            for poison, key, value in schedule.get(i, []):
                fut = pub.publish(poison.topic, key, value)
                fut.add_done_callback(functools.partial(acked, poison))
            ahead = counter[0] / rate - (time.monotonic() - started)
            if ahead > 0.05:
                pub.flush(30)
                time.sleep(ahead)
        pub.flush(120)
    finally:
        pub.close(30)
        done.set()


class _StallWatch:
    """Samples the committed offsets of the groups behind each acknowledged poison record."""

    def __init__(self, settings: Settings, sinks: list[Sink]) -> None:
        self._settings = settings
        self._groups = {s.value: GroupOffsets(settings.kafka,
                                              settings.kafka.consumer_group(s.value))
                        for s in sinks}
        self._open: list[Poison] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, poison: Poison) -> None:
        with self._lock:
            self._open.append(poison)

    def _run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            open_ = [p for p in self._open if set(p.passed) != set(p.groups)]
            self._open = open_
        for sink, group in self._groups.items():
            wanted = {(p.topic, p.partition) for p in open_
                      if sink in p.groups and sink not in p.passed}
            if not wanted:
                continue
            try:
                committed = group.committed(wanted)
            except Exception:  # a coordinator moving: sample again next time
                self.errors += 1
                continue
            now = time.monotonic()
            for p in open_:
                if sink in p.groups and sink not in p.passed \
                        and committed.get((p.topic, p.partition), -1) > p.offset:
                    p.passed[sink] = now

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        for group in self._groups.values():
            group.close()


def _read_dead_letters(kafka: KafkaSettings, starts: dict[int, int],
                       timeout_s: float = 60) -> list[tuple[dict[str, str], bytes]]:
    """The dead-letter topic's records from ``starts`` up to its current end: (headers,
    value)."""
    ends = end_offsets(kafka, Topic.DEADLETTER.value)
    consumer = Consumer({**kafka.client_config(), "group.id": f"polystream-poison-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    out: list[tuple[dict[str, str], bytes]] = []
    try:
        wanted = {p: e for p, e in ends.items() if e > starts.get(p, 0)}
        consumer.assign([TopicPartition(Topic.DEADLETTER.value, p, starts.get(p, 0))
                         for p in wanted])
        at = {p: starts.get(p, 0) for p in wanted}
        deadline = time.monotonic() + timeout_s
        while any(at[p] < wanted[p] for p in wanted):
            if time.monotonic() > deadline:
                raise TimeoutError("dead-letter topic not read to its end")
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition is None or offset is None:
                continue
            at[partition] = offset + 1
            headers: dict[str, str] = {}
            pairs = cast(list[tuple[str, Any]], msg.headers() or [])
            for name, raw in pairs:
                data = raw.encode() if isinstance(raw, str) else raw or b""
                headers[str(name)] = data.decode(errors="replace")
            value = msg.value()
            out.append((headers, value.encode() if isinstance(value, str) else value or b""))
    finally:
        consumer.close()
    return out


def _wait_started(worker: PolystreamProcess, sinks: list[Sink], timeout_s: float) -> None:
    names = [("auditor" if s is Sink.AUDIT else f"sink {s.value}") + ": started" for s in sinks]
    deadline = time.monotonic() + timeout_s
    while not all(n in worker.tail(200) for n in names):
        if not worker.alive():
            raise RuntimeError(f"worker all exited with {worker.proc.returncode}:\n"
                               f"{worker.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker all not started after {timeout_s:.0f}s")
        time.sleep(0.2)


def run_poison_drill(base: Settings, *, events: int, rate: float, rounds: int = 1,
                     seed: int = 23, users: int = 300, workdir: Path | None = None,
                     timeout_s: float = 1800, log: Log = print) -> PoisonReport:
    """Publish ``events`` valid events at ``rate`` per second with ``rounds`` poison records of
    each kind per topic spread over the run at random moments; drain with one `worker all`;
    read the dead letters; verify."""
    rng = random.Random(seed)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="polystream-chaos-poison-"))
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"events-{seed}.jsonl"
    _write_valid(path, seed, events, users)
    n_valid = sum(1 for _ in read_recorded(path))
    ensure_topics(base.kafka, topic_specs(base.kafka))
    report = PoisonReport(n_valid)
    with _deployments(base, ["poison"], log) as (deployment,):
        settings = deployment.settings(base)
        sinks = _sinks(settings)
        planned = plan(settings, seed + 1, rounds)
        report.poisons = [p for p, _, _ in planned]
        schedule: dict[int, list[tuple[Poison, str, bytes]]] = {}
        for item in planned:  # after the first tenth, before the last tenth
            schedule.setdefault(rng.randint(n_valid // 10, n_valid * 9 // 10), []).append(item)
        dlq_starts = end_offsets(base.kafka, Topic.DEADLETTER.value)
        worker = PolystreamProcess(["worker", "all", "--metrics-port", "0"],
                                   env=deployment.env(), log=tmp / "worker-all.log")
        watch = _StallWatch(settings, sinks)
        try:
            # A worker still starting is no stall behind a poison record: publish once every
            # consumer loop runs.
            _wait_started(worker, sinks, 90)
            done = threading.Event()
            counter = [0]
            started = time.monotonic()
            publisher = threading.Thread(
                target=_publish, args=(base, path, rate, schedule, done, counter, watch.add),
                daemon=True)
            publisher.start()
            while not done.wait(10):
                log(f"chaos poison: published {counter[0]:,} at "
                    f"{time.monotonic() - started:.0f}s")
                if not worker.alive():
                    raise RuntimeError(f"worker all exited with {worker.proc.returncode}:\n"
                                       f"{worker.tail()}")
            publisher.join(timeout_s)
            report.drained_s = _drain_all(settings, worker, started, timeout_s)
            watch.sample()
            log(f"chaos poison: drained at {report.drained_s:.1f}s")
        finally:
            watch.close()
            worker.terminate()
            if worker.wait(30) is None:
                log("chaos poison: worker all did not stop on SIGTERM within 30s; killed")
            worker.kill()
        by_place = {(p.topic, p.partition, p.offset): p for p in report.poisons}
        for headers, _value in _read_dead_letters(base.kafka, dlq_starts):
            try:
                place = (headers.get(DeadLetterHeader.TOPIC.value, ""),
                         int(headers.get(DeadLetterHeader.PARTITION.value, "-1")),
                         int(headers.get(DeadLetterHeader.OFFSET.value, "-1")))
            except ValueError:
                continue
            poison = by_place.get(place)
            if poison is not None:
                poison.dead_letters.append((headers.get(DeadLetterHeader.REASON.value, ""),
                                            headers.get(DeadLetterHeader.CONSUMER.value, "")))
                # The value is the original bytes, by design (see the module docstring).
                if poison.kind == "card_number":
                    poison.card_leaks += [f"header {name}" for name, text in headers.items()
                                          if has_card_number(f"{name} {text}")]
        cards = [p for p in report.poisons if p.kind == "card_number"]
        if cards and Sink.AUDIT in sinks:
            check_audit_documents(settings, cards)
        report.outcome = judge(deployment, settings, path)
    return report


def check_audit_documents(settings: Settings, poisons: list[Poison]) -> None:
    """Each poison record's dead-letter document in the audit index, as stored: a missing one,
    or one holding the card number anywhere, goes into the record's `card_leaks`."""
    from polystream.audit.opensearch import OpenSearchAuditIndex

    index = OpenSearchAuditIndex(settings.opensearch, read_only=True)
    try:
        index.refresh()
        ids = {f"dl:{p.topic}:{p.partition}:{p.offset}:{p.consumer}": p for p in poisons}
        found = index.client.search(index=index.pattern, body={
            "query": {"ids": {"values": sorted(ids)}}, "size": len(ids)})
        stored = {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}
    finally:
        index.close()
    for doc_id, poison in ids.items():
        if doc_id not in stored:
            poison.card_leaks.append("no dead-letter document in the audit index to check")
        elif has_card_number(json.dumps(stored[doc_id], ensure_ascii=False)):
            poison.card_leaks.append("audit dead-letter document")
