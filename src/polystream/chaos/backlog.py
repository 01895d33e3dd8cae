"""The backlog drill: the same events drained fast, by a throttled worker, across a freeze of the
worker process, and across a freeze during its start-up; every variant must end in the same
stores (`verify` exit 0), with as few rejections as a fast drain. Then a worker frozen long
enough to lose its group membership is sent SIGTERM: it must exit in bounded time.

Each variant is its own deployment (consumer groups, databases, key prefix: see
`deployment.py`) running `polystream worker all` as an operator would, all of them draining the
same topics side by side. Their groups start at the topics' current end, so only what the
drill publishes is read: first another run (other seed), then the events under test. The
stores therefore also hold other data, as a real stack does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from polystream.bus.admin import delete_groups, ensure_topics, group_lag, start_group_at_end
from polystream.bus.kafka import KafkaEventPublisher
from polystream.bus.topology import topic_specs, topics_for
from polystream.chaos.deployment import Deployment
from polystream.chaos.processes import PolystreamProcess, stop_all
from polystream.domain.events import EVENT_TYPES, Sink, decode
from polystream.settings import Settings
from polystream.shred import wrap_publisher
from polystream.simulate import SimConfig, generate, read_recorded

VARIANTS = ("fast", "throttled", "freeze", "startup-freeze")

Log = Callable[[str], None]


@dataclass
class VariantResult:
    name: str
    drained_s: float | None = None
    verify_exit: int | None = None
    verify_summary: str = ""
    receipts: Counter[str] = field(default_factory=Counter)
    # (event type, sink, reason) of every rejected receipt, keyed by event id and sink
    rejected: dict[str, str] = field(default_factory=dict)
    sigterm_exit_s: float | None = None
    sigterm_code: int | None = None

    @property
    def rejected_share(self) -> float:
        total = sum(self.receipts.values())
        return self.receipts["rejected"] / total if total else 0.0


@dataclass
class DrillReport:
    events: int
    other_events: int
    freeze_s: float
    variants: list[VariantResult]

    def table(self) -> str:
        rows = [f"{'variant':<15} {'drained':>9} {'verify':>6} {'receipts':>9} "
                f"{'rejected':>8} {'share':>7}  sigterm"]
        for v in self.variants:
            sig = (f"exit {v.sigterm_code} after {v.sigterm_exit_s:.1f}s"
                   if v.sigterm_exit_s is not None else "")
            drained = f"{v.drained_s:.1f}s" if v.drained_s is not None else "no"
            rows.append(f"{v.name:<15} {drained:>9} {v.verify_exit!s:>6} "
                        f"{sum(v.receipts.values()):>9,} {v.receipts['rejected']:>8,} "
                        f"{v.rejected_share:>7.2%}  {sig}")
        return "\n".join(rows)


def _write(path: Path, seed: int, events: int, users: int, titles: int | None = None) -> None:
    config = SimConfig(seed=seed, users=users) if titles is None else SimConfig(
        seed=seed, users=users, titles=titles)
    with path.open("wb") as out:
        for ev in generate(config, limit=events):
            out.write(ev.value + b"\n")


def prepare_drill(base: Settings, drill: str, *, seed: int, events: int, users: int,
                  workdir: Path | None, titles: int | None = None) -> tuple[Path, Path]:
    """The drill's folder (``workdir``, or a new temporary one) and the recorded events it
    publishes, written there; the topics exist once this returns."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix=f"polystream-chaos-{drill}-"))
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"events-{seed}.jsonl"
    _write(path, seed, events, users, titles)
    ensure_topics(base.kafka, topic_specs(base.kafka))
    return tmp, path


def _publish(settings: Settings, path: Path) -> int:
    pub = wrap_publisher(settings, KafkaEventPublisher(
        settings.kafka, client_id="polystream-drill"), "drill")
    n = 0
    try:
        for ev in read_recorded(path):
            pub.publish_fire(ev.topic, ev.key, ev.value)
            n += 1
        pub.flush(120)
    finally:
        pub.close(30)
    return n


def _lags(settings: Settings) -> dict[str, int]:
    """Records not committed yet, per sink group of the deployment."""
    return {sink.value: sum(group_lag(settings.kafka,
                                      settings.kafka.consumer_group(sink.value),
                                      [t.value for t in topics_for(sink)]).values())
            for sink in Sink if sink is not Sink.AUDIT or settings.opensearch.enabled}


def _receipt_statuses(settings: Settings, path: Path) -> tuple[Counter[str], dict[str, str]]:
    """Status of every store sink's receipt for the file's events (the receipt log), and what
    was rejected ("<event id>:<sink>" -> "<type>: <reason>")."""
    r = redis.Redis.from_url(settings.redis.url)
    prefix = settings.redis.key_prefix
    keys: list[tuple[str, str]] = []
    for ev in read_recorded(path):
        env = decode(ev.value)
        for sink in EVENT_TYPES[env.type].consumers:
            if sink is not Sink.AUDIT:
                keys.append((f"{env.event_id}:{sink.value}", env.type))
    counts: Counter[str] = Counter()
    rejected: dict[str, str] = {}
    for i in range(0, len(keys), 2000):
        chunk = keys[i:i + 2000]
        for (name, etype), raw in zip(
                chunk, r.mget([f"{prefix}:receipt:{n}" for n, _ in chunk]), strict=True):
            receipt = json.loads(raw) if raw is not None else {"status": "missing"}
            counts[receipt["status"]] += 1
            if receipt["status"] == "rejected":
                rejected[name] = f"{etype}: {receipt.get('reason')}"
    r.close()
    return counts, rejected


def _verify(deployment: Deployment, path: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "polystream", "verify", "--json", str(path)],
                          env=deployment.env(), capture_output=True, text=True, timeout=900)
    try:
        result = json.loads(done.stdout)
        bad = [f"{p['store']}/{p['part']}: {'; '.join(p['samples'])[:300]}"
               for p in result.get("parts", []) if not p["ok"]]
        summary = result.get("error") or ("; ".join(bad) if bad else
                                          f"{result['events']:,} events, all parts same")
    except (ValueError, KeyError):
        summary = (done.stdout + done.stderr)[-500:]
    return done.returncode, summary


@contextmanager
def _deployments(base: Settings, names: Sequence[str], log: Log) -> Iterator[list[Deployment]]:
    run = uuid.uuid4().hex[:6]
    deployments = [Deployment(f"drill-{run}-{name}") for name in names]
    try:
        for d in deployments:
            d.create(base)
            settings = d.settings(base)
            for sink in Sink:
                start_group_at_end(settings.kafka, settings.kafka.consumer_group(sink.value),
                                   [t.value for t in topics_for(sink)])
        yield deployments
    finally:
        for d in deployments:
            d.drop(base)
            settings = d.settings(base)
            groups = [settings.kafka.consumer_group(s.value) for s in Sink]
            deadline = time.monotonic() + 30
            while True:
                try:
                    delete_groups(settings.kafka, groups)
                    break
                except Exception as exc:  # a member that just left may still be listed
                    if time.monotonic() > deadline:
                        log(f"drill: groups of {d.name} not deleted: {exc}")
                        break
                    time.sleep(1)


def run_backlog_drill(base: Settings, *, events: int, other_events: int, freeze_s: float,
                      seed: int = 7, users: int = 1000, workdir: Path | None = None,
                      variants: Sequence[str] = VARIANTS, timeout_s: float = 1800,
                      log: Log = print) -> DrillReport:
    tmp = Path(workdir or tempfile.mkdtemp(prefix="polystream-drill-"))
    tmp.mkdir(parents=True, exist_ok=True)
    main_file, other_file = tmp / f"events-{seed}.jsonl", tmp / f"other-{seed + 1000}.jsonl"
    _write(main_file, seed, events, users)
    _write(other_file, seed + 1000, other_events, max(10, users // 4))
    ensure_topics(base.kafka, topic_specs(base.kafka))
    results = [VariantResult(v) for v in variants]
    with _deployments(base, variants, log) as deployments:
        n_other, n_main = _publish(base, other_file), _publish(base, main_file)
        log(f"drill: published {n_other:,} events of another run, then {n_main:,} under test")
        # Four workers on one host: none needs /metrics (port 0), none fights for the port.
        procs = {d.name: PolystreamProcess(["worker", "all", "--metrics-port", "0"], env=d.env(),
                                           log=tmp / f"{d.name}.log") for d in deployments}
        try:
            _drive(base, deployments, procs, results, freeze_s, timeout_s, log)
            for d, res in zip(deployments, results, strict=True):
                res.receipts, res.rejected = _receipt_statuses(d.settings(base), main_file)
                res.verify_exit, res.verify_summary = _verify(d, main_file)
                log(f"drill: {res.name}: verify exit {res.verify_exit}: {res.verify_summary}")
            _sigterm_after_freeze(procs, deployments, results, freeze_s, log)
        finally:
            for p in procs.values():
                p.unthrottle()
            stop_all(procs.values(), log, "drill")
    return DrillReport(n_main, n_other, freeze_s, results)


def _drive(base: Settings, deployments: Sequence[Deployment],
           procs: dict[str, PolystreamProcess], results: Sequence[VariantResult],
           freeze_s: float, timeout_s: float, log: Log) -> None:
    by_variant = dict(zip([r.name for r in results], deployments, strict=True))
    started = time.monotonic()
    startup = by_variant.get("startup-freeze")
    startup_frozen = 0.0
    if startup is not None:
        # Inside start-up: topics, migrations, index templates, first connections.
        proc = procs[startup.name]
        while "workers starting" not in proc.tail(50) and time.monotonic() - started < 60:
            time.sleep(0.05)
        time.sleep(0.2)
        proc.freeze()
        startup_frozen = time.monotonic() - started
        log(f"drill: startup-freeze frozen at {startup_frozen:.1f}s, during its start-up")
    throttled = by_variant.get("throttled")
    if throttled is not None:
        procs[throttled.name].throttle(0.3)
    frozen_mid: float | None = None
    thawed: set[str] = set()
    pending = {r.name: r for r in results}
    while pending:
        now = time.monotonic() - started
        if now > timeout_s:
            raise TimeoutError(f"not drained after {timeout_s:.0f}s: {', '.join(pending)}")
        for name, res in list(pending.items()):
            d = by_variant[name]
            proc = procs[d.name]
            if not proc.alive():
                raise RuntimeError(f"{name}: worker exited with {proc.proc.returncode}:\n"
                                   f"{proc.tail()}")
            if name == "startup-freeze" and name not in thawed \
                    and now >= startup_frozen + freeze_s:
                proc.thaw()
                thawed.add(name)
                log(f"drill: startup-freeze thawed at {now:.1f}s")
            lags = _lags(d.settings(base))
            lag = sum(lags.values())
            if int(now) // 10 != int(now - 1.0) // 10 and lag:
                log(f"drill: {name} at {now:.0f}s: lag " + ", ".join(
                    f"{sink} {n:,}" for sink, n in lags.items()))
            if name == "freeze" and frozen_mid is None and now >= 3.0 and lag > 0:
                proc.freeze()
                frozen_mid = now
                log(f"drill: freeze frozen mid-drain at {now:.1f}s (lag {lag:,})")
            if name == "freeze" and frozen_mid is not None and name not in thawed \
                    and now >= frozen_mid + freeze_s:
                proc.thaw()
                thawed.add(name)
                log(f"drill: freeze thawed at {now:.1f}s")
            frozen = (name == "freeze" and name not in thawed) or (
                name == "startup-freeze" and name not in thawed)
            if lag == 0 and not frozen and now > 3.0:
                res.drained_s = now
                del pending[name]
                if name == "throttled":
                    procs[d.name].unthrottle()
                log(f"drill: {name} drained at {now:.1f}s")
        time.sleep(1.0)


def _sigterm_after_freeze(procs: dict[str, PolystreamProcess],
                          deployments: Sequence[Deployment], results: Sequence[VariantResult],
                          freeze_s: float, log: Log) -> None:
    """Freeze a drained worker past its session timeout, then SIGTERM it as it thaws."""
    for d, res in zip(deployments, results, strict=True):
        if res.name != "startup-freeze":
            continue
        proc = procs[d.name]
        proc.freeze()
        time.sleep(freeze_s)
        proc.terminate()
        t0 = time.monotonic()
        proc.thaw()
        res.sigterm_code = proc.wait(60)
        res.sigterm_exit_s = time.monotonic() - t0 if res.sigterm_code is not None else None
        log(f"drill: SIGTERM after a {freeze_s:.0f}s freeze: exit {res.sigterm_code} after "
            f"{res.sigterm_exit_s}s")
