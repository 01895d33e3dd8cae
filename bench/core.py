"""The measuring machinery shared by every benchmark: samples, variants, interleaving, medians.

A benchmark has two or more *variants* of the same work on the same data: ``ours`` (the
polystream component), ``baseline`` (the raw client doing the least the work needs) and,
optionally, ``reference`` variants shown for context. Each variant is a function that does its
own per-repetition setup (fresh database, new producer...), times only the work with a
:class:`Stopwatch`, cleans up, and returns a :class:`Sample`.

Repetitions are interleaved (ours, baseline, ours, baseline, ...) so that a burst of noise on
this shared machine hits both sides instead of one, and each side is summarised by its median.
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar

from rich.markup import escape

Role = Literal["ours", "baseline", "reference"]
T = TypeVar("T")


_TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine spent busy since boot (``/proc/stat``); 0.0 where
    that file does not exist."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    ticks = [int(value) for value in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) * _TICK_S


@dataclass(slots=True)
class Stopwatch:
    """Wall-clock time of the ``with`` block, the CPU time this process used in it, and the
    CPU time the whole machine used (this process, the servers, and any neighbour's noise)."""

    seconds: float = 0.0
    cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    _t0: float = 0.0
    _c0: float = 0.0
    _m0: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._m0 = machine_busy_s()
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.machine_cpu_s = machine_busy_s() - self._m0


@dataclass(slots=True)
class Sample:
    """One repetition of one variant: ``items`` processed in ``seconds``."""

    items: int
    seconds: float
    cpu_s: float
    machine_cpu_s: float
    #: Problems found by the variant's own checks (acked != sent, rows missing...).
    problems: list[str] = field(default_factory=list)
    #: Anything worth keeping about this repetition (outcome counts, bytes...).
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, items: int, watch: Stopwatch, problems: Sequence[str] = (), **info: Any) -> Sample:
        return cls(
            items, watch.seconds, watch.cpu_s, watch.machine_cpu_s, list(problems), dict(info)
        )

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    role: Role
    run: Callable[[int], Sample]  # repetition index -> sample
    description: str


class Benchmark(Protocol):
    """What the runner needs from a benchmark module's class."""

    name: str
    title: str
    unit: str

    def describe(self) -> str: ...

    def size(self) -> dict[str, Any]:
        """The parameters of this run (items per repetition, batch size...)."""
        ...

    def setup(self) -> None:
        """Build the data and the shared resources (untimed)."""
        ...

    def variants(self) -> list[Variant]: ...

    def teardown(self) -> None:
        """Delete everything the benchmark created; must not raise for a half-done setup."""
        ...


@dataclass(slots=True)
class VariantResult:
    name: str
    role: Role
    description: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [sample.rate for sample in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.samples else 0.0

    @property
    def spread(self) -> float:
        """(max - min) / median of the repetitions' rates: how noisy this side was."""
        rates = self.rates
        median = self.median
        return (max(rates) - min(rates)) / median if rates and median > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        """Median share of one core this process used while timing (1.0 = one core busy)."""
        shares = [s.cpu_s / s.seconds for s in self.samples if s.seconds > 0]
        return statistics.median(shares) if shares else 0.0

    @property
    def machine_cpu_share(self) -> float:
        """Median number of cores the whole machine kept busy while timing (at most the CPU
        count): the benchmark process plus the server it talks to (plus noise)."""
        shares = [s.machine_cpu_s / s.seconds for s in self.samples if s.seconds > 0]
        return statistics.median(shares) if shares else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "description": self.description,
            "median_rate": self.median,
            "min_rate": min(self.rates, default=0.0),
            "max_rate": max(self.rates, default=0.0),
            "spread": self.spread,
            "cpu_share": self.cpu_share,
            "machine_cpu_share": self.machine_cpu_share,
            "samples": [
                {
                    "items": s.items,
                    "seconds": s.seconds,
                    "cpu_s": s.cpu_s,
                    "machine_cpu_s": s.machine_cpu_s,
                    "rate": s.rate,
                    "problems": s.problems,
                    "info": s.info,
                }
                for s in self.samples
            ],
        }


@dataclass(slots=True)
class BenchResult:
    name: str
    title: str
    unit: str
    description: str
    size: dict[str, Any]
    variants: list[VariantResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    #: The 1-minute load average when the benchmark started (the machine is shared).
    load_before: float = 0.0

    def variant(self, role: Role) -> VariantResult | None:
        return next((v for v in self.variants if v.role == role), None)

    @property
    def ratio(self) -> float | None:
        ours, base = self.variant("ours"), self.variant("baseline")
        if ours is None or base is None or base.median <= 0:
            return None
        return ours.median / base.median

    @property
    def paired_ratio(self) -> float | None:
        """Median over repetitions of ours / baseline within the same repetition: the two ran
        back to back, so a noisy moment weighs on both sides of each pair."""
        ours, base = self.variant("ours"), self.variant("baseline")
        if ours is None or base is None:
            return None
        pairs = [
            a.rate / b.rate for a, b in zip(ours.samples, base.samples, strict=True) if b.rate > 0
        ]
        return statistics.median(pairs) if pairs else None

    @property
    def problems(self) -> list[str]:
        return [
            f"{v.name} rep {i}: {p}"
            for v in self.variants
            for i, s in enumerate(v.samples)
            for p in s.problems
        ]

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.problems
            and all(v.samples and v.median > 0 for v in self.variants)
        )

    def to_json(self) -> dict[str, Any]:
        ours, base = self.variant("ours"), self.variant("baseline")
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "description": self.description,
            "size": self.size,
            "ok": self.ok,
            "error": self.error,
            "problems": self.problems,
            "seconds": self.seconds,
            "load_before": self.load_before,
            "ours_median": ours.median if ours else None,
            "baseline_median": base.median if base else None,
            "ratio": self.ratio,
            "paired_ratio": self.paired_ratio,
            "variants": [v.to_json() for v in self.variants],
        }


Progress = Callable[[str], None]


@contextmanager
def _always(action: Callable[[], None], progress: Progress, what: str) -> Iterator[None]:
    try:
        yield
    finally:
        try:
            action()
        except Exception as exc:  # cleanup must not hide the benchmark's own outcome
            progress(f"[yellow]{what}: cleanup failed: {escape(f'{type(exc).__name__}: {exc}')}[/]")


def run_benchmark(bench: Benchmark, reps: int, progress: Progress) -> BenchResult:
    """Set up, run ``reps`` interleaved repetitions of every variant, tear down.

    An exception ends this benchmark (recorded as its error) but never the suite.
    """
    result = BenchResult(bench.name, bench.title, bench.unit, bench.describe(), bench.size())
    result.load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        with _always(bench.teardown, progress, bench.name):
            bench.setup()
            variants = bench.variants()
            result.variants = [VariantResult(v.name, v.role, v.description) for v in variants]
            for rep in range(reps):
                for variant, collected in zip(variants, result.variants, strict=True):
                    sample = variant.run(rep)
                    collected.samples.append(sample)
                    flag = (
                        ""
                        if not sample.problems
                        else f" [red]{escape('; '.join(sample.problems))}[/]"
                    )
                    progress(
                        f"  {bench.name} rep {rep + 1}/{reps} {variant.name:<10} "
                        f"{sample.rate:>12,.0f} {bench.unit} "
                        f"({sample.items:,} in {sample.seconds:.2f}s){flag}"
                    )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        progress(f"[red]{bench.name} failed: {escape(result.error)}[/]")
        progress(escape(traceback.format_exc(limit=6)))
    result.seconds = time.perf_counter() - started
    return result


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
