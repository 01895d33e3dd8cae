"""The pipeline and API benchmarks run end to end on the real stack at their quick sizes and
produce sane numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, out: Path, timeout_s: float) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, output
    files = list(out.glob("*.json"))
    assert len(files) == 1, output
    document: dict[str, Any] = json.loads(files[0].read_text(encoding="utf-8"))
    assert document["quick"] is True
    assert document["machine"]["cpus"] >= 1
    assert len(document["machine"]["loadavg_start"]) == 3
    assert document["git"]["commit"]
    return document


def _ordered(*values: float | None) -> bool:
    finite = [v for v in values if v is not None]
    return len(finite) == len(values) and all(math.isfinite(v) for v in finite) and (
        finite == sorted(finite))


def test_quick_pipeline_bench_drains_every_group_and_orders_its_percentiles(
        tmp_path: Path) -> None:
    doc = _run("bench.pipeline", tmp_path, 150)
    phases = {p["label"]: p for p in doc["phases"]}
    assert set(phases) == {"full", "open1000"}

    full = phases["full"]
    assert full["ok"] and full["problems"] == []
    assert full["published"] == doc["settings"]["events"] == 10_000
    assert full["simulator"]["acked"] == full["published"]
    assert full["end_to_end_s"] > 0 and full["end_to_end_rate"] > 0
    assert 0 < full["ratio_to_simulator"] < 10
    for name, sink in full["sinks"].items():
        assert sink["seconds"] > 0 and sink["records"] > 0, name
        assert sink["seconds"] <= full["end_to_end_s"] + 1e-6, name
    # The auditor reads every event plus every store's receipt.
    assert full["sinks"]["audit"]["records"] > full["published"]
    check = full["receipts_check"]
    assert check["received"] == check["expected"] and check["foreign_events"] == 0
    (worker,) = full["workers"]
    assert worker["process"] == "worker all"
    assert 20 < worker["peak_rss_mib"] < 4096 and worker["cpu_s_drain"] > 0
    # `worker all` is a parent and one child process per sink (four with the auditor).
    assert worker["processes"] == 5
    assert worker["peak_rss_mib"] < worker["tree_peak_rss_mib"]

    opened = phases["open1000"]
    assert opened["ok"] and opened["rate"] == 1000
    fresh = opened["freshness"]
    assert fresh["events"] > 0 and fresh["missing"] == 0
    assert _ordered(fresh["p50_s"], fresh["p95_s"], fresh["p99_s"], fresh["max_s"])
    assert fresh["p50_s"] > 0
    assert set(opened["freshness_by_sink"]) == {"postgres", "mongo", "redis"}

    kinds = {(b["kind"], b["store"]): b for b in doc["baselines"]}
    assert {("raw", s) for s in ("postgres", "redis", "mongo", "audit")} <= set(kinds)
    assert {("naive", "postgres"), ("naive", "redis")} <= set(kinds)
    for key, base in kinds.items():
        assert base["problems"] == [] and base["rate"] > 0, key
    assert doc["cleanup_problems"] == []


def test_quick_api_bench_accepts_commands_next_to_healthz(tmp_path: Path) -> None:
    doc = _run("bench.api", tmp_path, 120)
    assert doc["problems"] == []
    (run,) = doc["runs"]
    assert run["workers"] == 1 and run["healthz_rate"] > 0
    closed = {c["endpoint"]: c for c in run["closed"]}
    assert set(closed) == {"healthz", "heartbeat", "rating", "registration", "title", "browse",
                           "browse-uncached", "trending"}
    healthz_runs = [c for c in run["closed"] if c["endpoint"] == "healthz"]
    assert len(healthz_runs) == 3  # before, between and after the others, in the same process
    for name, c in closed.items():
        assert c["accepted"] == c["requests"], name
        if name == "browse-uncached" and c["requests"] == 0:
            continue  # a quick second of cache misses on FerretDB may finish none
        assert c["accepted"] > 0 and c["rate"] > 0, name
        assert _ordered(c["p50_ms"], c["p90_ms"], c["p99_ms"], c["max_ms"]), name
    # argon2id makes a registration far dearer than a heartbeat.
    assert closed["registration"]["rate"] < closed["heartbeat"]["rate"]
    for o in run["open"]:
        assert o["scheduled"] == o["completed"] == o["accepted"] > 0, o["endpoint"]
        assert _ordered(o["p50_ms"], o["p90_ms"], o["p99_ms"], o["max_ms"]), o["endpoint"]
    assert {o["endpoint"] for o in run["open"]} == {"healthz", "heartbeat", "rating"}
