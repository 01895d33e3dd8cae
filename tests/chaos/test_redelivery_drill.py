"""Records delivered twice, late or again from the start change nothing (issue 12, item 4).

The bounded runs of `polystream chaos duplicates` and `polystream chaos replay`, one after the
other on the same deployment: 6,000 events published with 10% of them re-sent a little later
and older title versions re-sent under new event ids after the newer ones; the stores must
equal what the original events imply (`verify`: nothing lost, duplicated or stale). Then every
sink group is rewound to where it started and drains everything again: no store's digest may
change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.chaos.redelivery import run_redelivery_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_duplicates_stale_versions_and_a_full_replay_change_nothing(settings: Settings,
                                                                    tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_redelivery_drill(settings, events=6_000, share=0.10, replay=True, seed=1013,
                                  workdir=tmp_path, timeout_s=300, log=lines.append)
    summary = "\n".join(report.lines())
    print("\n[chaos duplicates + replay]\n" + summary)
    context = f"\n{summary}\n" + "\n".join(lines[-20:])
    assert report.injected.duplicates >= 0.08 * report.events, context
    assert report.injected.stale > 0, context
    out = report.outcome
    assert out.verify_exit == 0, context
    assert (out.lost, out.duplicated, out.stale) == (0, 0, 0), context
    assert out.receipts["duplicate"] + out.receipts["stale"] > 0, context
    assert report.replay_outcome is not None and report.replay_outcome.verify_exit == 0, context
    assert set(report.digests_before) == {"postgres", "mongo", "redis"}, context
    assert report.changed == [], context
