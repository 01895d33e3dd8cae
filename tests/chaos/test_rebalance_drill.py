"""A worker frozen until its group rebalances under it applies nothing twice (issue 12).

The bounded run of `polystream chaos rebalance`: two worker processes per store sink share
its group; 6,000 events are published over ~30 s and one member of each group is frozen
(SIGSTOP) for 15 s, past the 10 s session timeout, one third in. The other member must take
over and commit, the frozen one must come back without harm, and `verify` must find nothing
lost, duplicated or stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.chaos.rebalance import run_rebalance_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_a_group_rebalanced_under_a_frozen_worker_loses_and_repeats_nothing(
        settings: Settings, tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_rebalance_drill(settings, events=6_000, rate=200, freeze_s=15, seed=1017,
                                 workdir=tmp_path, timeout_s=150, log=lines.append)
    summary = "\n".join(report.lines())
    print("\n[chaos rebalance]\n" + summary)
    context = f"\n{summary}\n" + "\n".join(lines[-20:])
    assert report.events == 6_000, context
    assert {f.sink for f in report.freezes} == {"postgres", "mongo", "redis"}, context
    assert all(f.taken_over_s is not None and f.taken_over_s < 15 for f in report.freezes), \
        context
    out = report.outcome
    assert out.verify_exit == 0, context
    assert (out.lost, out.duplicated, out.stale) == (0, 0, 0), context
    assert out.receipts["missing"] == 0, context
