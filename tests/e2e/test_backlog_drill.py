"""Falling behind loses nothing (issue 15), on the real stack, with real worker processes.

The bounded drill of `polystream chaos backlog`: 20,000 events (after 3,000 of another run) are
drained by four `polystream worker all` deployments side by side: fast, throttled to 30% of
the CPU time, frozen (SIGSTOP) for 35 s mid-drain, and frozen for 35 s during start-up. Every
variant must reach the same stores (`verify` exit 0) with the same, tiny number of
rejections; the worker frozen past its session timeout must then exit soon after SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.chaos.backlog import VARIANTS, run_backlog_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FREEZE_S = 35.0


def test_every_variant_of_a_backlog_ends_in_the_same_stores(settings: Settings,
                                                             tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_backlog_drill(settings, events=20_000, other_events=3_000, freeze_s=FREEZE_S,
                               workdir=tmp_path, timeout_s=600, log=lines.append)
    table = report.table()
    print("\n[drill]\n" + table)
    context = f"\n{table}\n" + "\n".join(lines[-30:])
    by_name = {v.name: v for v in report.variants}
    assert set(by_name) == set(VARIANTS), context
    for v in report.variants:
        assert v.drained_s is not None, f"{v.name} never drained{context}"
        assert v.verify_exit == 0, f"{v.name}: verify {v.verify_summary}{context}"
        assert sum(v.receipts.values()) >= report.events, f"{v.name}: receipts missing{context}"
        assert v.rejected_share <= 0.005, f"{v.name} rejected too much{context}"
    fast = by_name["fast"].rejected
    for name in ("throttled", "freeze", "startup-freeze"):
        other = by_name[name].rejected
        differ = {k: fast.get(k) or other.get(k) for k in set(fast) ^ set(other)}
        assert not differ, f"{name} rejected other events than the fast drain: {differ}{context}"
    frozen = by_name["startup-freeze"]
    assert frozen.sigterm_exit_s is not None and frozen.sigterm_exit_s < 30, context
    assert frozen.sigterm_code == 0, context
