"""The benchmark suite (`make bench`) runs end to end on the real stack, at its quick sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ["codec", "shred", "kafka", "postgres", "redis", "mongo", "audit"]


def test_quick_suite_writes_positive_rates_for_every_benchmark(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, output

    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1, output
    document = json.loads(files[0].read_text(encoding="utf-8"))
    assert document["quick"] is True
    assert [bench["name"] for bench in document["benchmarks"]] == BENCHMARKS

    for bench in document["benchmarks"]:
        name = bench["name"]
        assert bench["error"] is None, (name, bench["error"])
        assert bench["problems"] == [], (name, bench["problems"])
        assert bench["ok"], name
        assert bench["ours_median"] > 0, name
        assert bench["baseline_median"] > 0, name
        assert bench["ratio"] > 0, name
        roles = [variant["role"] for variant in bench["variants"]]
        assert roles[:2] == ["ours", "baseline"], (name, roles)
        for variant in bench["variants"]:
            assert len(variant["samples"]) == document["reps"], (name, variant["name"])
            assert all(sample["rate"] > 0 for sample in variant["samples"]), (
                name, variant["name"])
