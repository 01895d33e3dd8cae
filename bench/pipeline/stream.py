"""The standard simulated mix: published by ``polystream simulate`` (a child process, as users
run it), and regenerated here, byte for byte, to know which event was the i-th sent and which
stores consume it."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from bench.pipeline.procs import child_env, polystream_command
from polystream.domain.events import EVENT_TYPES, Sink
from polystream.simulate import SimConfig, SimEvent, generate

SEED: Final = 7
#: Exactly what ``polystream simulate --seed 7`` generates (every other option at its
#: default: 1,000 users, 300 titles, posters on).
CONFIG: Final = SimConfig(seed=SEED)
STORE_SINKS: Final = (Sink.POSTGRES, Sink.MONGO, Sink.REDIS)


@dataclass(frozen=True, slots=True)
class Indexed:
    """The first ``count`` events: their ids in send order and who consumes each."""

    ids: tuple[str, ...]
    types: tuple[str, ...]
    topics: tuple[str, ...]
    #: Per event, the store sinks that write a receipt for it (the auditor writes none).
    stores: tuple[tuple[str, ...], ...]
    position: Mapping[str, int]

    def count_for(self, sink: Sink) -> int:
        return sum(1 for stores in self.stores if sink.value in stores) if (
            sink is not Sink.AUDIT) else len(self.ids)


@cache
def _events(count: int) -> tuple[SimEvent, ...]:
    return tuple(generate(CONFIG, count))


def events(count: int) -> tuple[SimEvent, ...]:
    """The first ``count`` events (a prefix of one cached generation)."""
    return _events(max(count, 20_000))[:count]


def _event_id(value: bytes) -> str:
    # The simulator writes the envelope's fields in model order; the id is at a fixed place
    # in practice, but a full parse keeps this independent of that.
    return str(json.loads(value)["event_id"])


@cache
def indexed(count: int) -> Indexed:
    stream = events(count)
    stores_of = {
        t: tuple(s.value for s in spec.consumers if s in STORE_SINKS)
        for t, spec in EVENT_TYPES.items()
    }
    ids = tuple(_event_id(e.value) for e in stream)
    return Indexed(
        ids=ids,
        types=tuple(e.type for e in stream),
        topics=tuple(e.topic for e in stream),
        stores=tuple(stores_of[e.type] for e in stream),
        position={event_id: i for i, event_id in enumerate(ids)},
    )


@dataclass
class SimRun:
    """What ``polystream simulate`` said about its run (parsed from its summary table)."""

    command: list[str]
    returncode: int
    sent: int = 0
    rate: float = 0.0
    acked: int = 0
    acked_rate: float = 0.0
    elapsed_s: float = 0.0
    until_acked_s: float = 0.0
    max_lag_s: float = 0.0
    output_tail: str = ""
    problems: list[str] = field(default_factory=list)


_ROWS: Final = {
    "sent": re.compile(r"total sent\s*\S\s*([\d,]+)"),
    "rate": re.compile(r"\brate\s*\S\s*([\d,]+) events/s"),
    "acked": re.compile(r"acked by Kafka\s*\S\s*([\d,]+)"),
    "acked_rate": re.compile(r"acked rate\s*\S\s*([\d,]+) events/s"),
    "elapsed_s": re.compile(r"\belapsed\s*\S\s*([\d.]+) s"),
    "until_acked_s": re.compile(r"elapsed until all acked\s*\S\s*([\d.]+) s"),
    "max_lag_s": re.compile(r"max lag behind schedule\s*\S\s*([\d.]+) s"),
}


def simulate(env: Mapping[str, str], *, events: int | None = None, rate: float = 0.0,
             duration_s: float | None = None, timeout_s: float = 600.0) -> SimRun:
    """Run ``polystream simulate --seed 7 ...`` to the end and read its summary."""
    args: list[str] = ["simulate", "--seed", str(SEED), "--rate", f"{rate:g}", "--no-progress"]
    if events is not None:
        args += ["--events", str(events)]
    if duration_s is not None:
        args += ["--duration", f"{duration_s:g}"]
    command = [*polystream_command(), *args]
    done = subprocess.run(
        command, env=child_env({**env, "COLUMNS": "200"}), capture_output=True,
        timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
    )
    text = (done.stdout + done.stderr).decode(errors="replace")
    run = SimRun(command=[*args], returncode=done.returncode,
                 output_tail="\n".join(text.splitlines()[-40:]))
    for name, pattern in _ROWS.items():
        match = pattern.search(text)
        if match is None:
            run.problems.append(f"simulate: no '{name}' in its summary")
            continue
        value = float(match.group(1).replace(",", ""))
        setattr(run, name, int(value) if name in ("sent", "acked") else value)
    if done.returncode != 0:
        run.problems.append(f"simulate exited {done.returncode}")
    elif run.acked != run.sent:
        run.problems.append(f"simulate: acked {run.acked} of {run.sent}")
    return run


def percentiles(values: Sequence[float], points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles (``inf`` where the value is beyond what was observed)."""
    if not values:
        return [float("nan")] * len(points)
    ordered = sorted(values)
    return [ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered) - 1e-9))) - 1]
            for p in points]
