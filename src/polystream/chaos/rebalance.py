"""The rebalance drill: two `worker <sink>` processes share each store sink's consumer group;
mid-stream one of them is frozen (SIGSTOP: its poll loop and its heartbeats stop) longer than
the group's session timeout (10 s, reached before max.poll.interval), so the group takes its
partitions away and gives them to the other member while it still holds a batch it read; then
it is resumed (SIGCONT) and must give up that batch rather than commit or apply it again.
Nothing may be lost or applied twice (`verify`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from polystream.chaos.backlog import Log, _deployments, prepare_drill
from polystream.chaos.kill import _committed, _drain, _sinks, publish_paced
from polystream.chaos.outcome import Outcome, judge
from polystream.chaos.processes import PolystreamProcess, stop_all
from polystream.domain.events import Sink
from polystream.settings import Settings


@dataclass
class Freeze:
    sink: str
    at_s: float
    frozen_s: float
    #: From the freeze until the group's other member committed (its own partitions or the
    #: frozen one's): the group keeps going while a member hangs.
    taken_over_s: float | None


@dataclass
class RebalanceReport:
    events: int
    drained_s: float
    freezes: list[Freeze] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)

    def lines(self) -> list[str]:
        return [f"events {self.events:,}, drained at {self.drained_s:.1f}s",
                *(f"{f.sink}: frozen at {f.at_s:.1f}s for {f.frozen_s:.0f}s, the other member "
                  "committed after "
                  + (f"{f.taken_over_s:.1f}s" if f.taken_over_s is not None else "never")
                  for f in self.freezes),
                *self.outcome.lines()]


def run_rebalance_drill(base: Settings, *, events: int, rate: float, freeze_s: float,
                        seed: int = 17, users: int = 1000, workdir: Path | None = None,
                        timeout_s: float = 1800, log: Log = print) -> RebalanceReport:
    """Publish ``events`` at ``rate``; one third in, freeze one member of every store sink's
    group for ``freeze_s`` seconds, all at once; resume them; drain; verify."""
    tmp, path = prepare_drill(base, "rebalance", seed=seed, events=events, users=users,
                              workdir=workdir)
    with _deployments(base, ["rebalance"], log) as (deployment,):
        settings = deployment.settings(base)
        sinks = _sinks(settings)
        twinned = [s for s in sinks if s is not Sink.AUDIT]

        def start(sink: Sink, n: int) -> PolystreamProcess:
            return PolystreamProcess(["worker", sink.value, "--metrics-port", "0"],
                                     env=deployment.env(),
                                     log=tmp / f"worker-{sink.value}-{n}.log")

        procs = {s: start(s, 1) for s in sinks}
        spares = {s: start(s, 2) for s in twinned}
        try:
            published = threading.Event()
            counter = [0]
            started = time.monotonic()
            threading.Thread(target=publish_paced, args=(base, path, rate, published, counter),
                             daemon=True).start()
            while time.monotonic() - started < events / rate / 3:
                time.sleep(0.1)
            before = {s: _committed(settings, s)[0] for s in twinned}
            at = time.monotonic() - started
            for s in twinned:
                procs[s].freeze()
            log(f"chaos rebalance: froze one member of {len(twinned)} groups at {at:.1f}s "
                f"(published {counter[0]:,})")
            taken: dict[Sink, float] = {}
            while time.monotonic() - started < at + freeze_s:
                # Commits while the first member is frozen come from the other one.
                now = time.monotonic() - started
                for s in twinned:
                    if s not in taken and now - at > 1 and _committed(settings, s)[0] > before[s]:
                        taken[s] = now - at
                time.sleep(0.5)
            for s in twinned:
                procs[s].thaw()
            log(f"chaos rebalance: resumed after {freeze_s:.0f}s; taken over after "
                + ", ".join(f"{s.value} {t:.1f}s" for s, t in taken.items()))
            published.wait(timeout_s)
            drained = _drain(settings, sinks, procs, started, timeout_s, log)
            for s, p in spares.items():
                if not p.alive():
                    raise RuntimeError(f"second {s.value} worker exited: {p.tail()}")
            report = RebalanceReport(counter[0], drained, [
                Freeze(s.value, at, freeze_s, taken.get(s)) for s in twinned])
            report.outcome = judge(deployment, settings, path)
        finally:
            everyone = [*procs.values(), *spares.values()]
            for p in everyone:
                p.thaw()
            stop_all(everyone, log, "chaos rebalance")
    return report
