"""Workers killed mid-stream lose nothing and apply nothing twice (issue 12, item 4).

The bounded run of `polystream chaos kill`: 10,000 events published over ~25 s while sink and
audit worker processes are SIGKILLed 4 times at random moments and restarted at once; every
store must then match the events (`verify`), and every killed sink must commit again soon.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.chaos.kill import run_kill_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_sigkilled_workers_lose_nothing_and_apply_nothing_twice(settings: Settings,
                                                                tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_kill_drill(settings, events=10_000, kills=4, rate=400, seed=1011, workdir=tmp_path,
                            timeout_s=400, log=lines.append)
    summary = "\n".join(report.lines())
    print("\n[chaos kill]\n" + summary)
    context = f"\n{summary}\n" + "\n".join(lines[-20:])
    assert report.events == 10_000, context
    assert len(report.kills) == 4, context
    assert all(k.recovered_s is not None and k.recovered_s < 60 for k in report.kills), context
    assert report.outcome.verify_exit == 0, context
    assert (report.outcome.lost, report.outcome.duplicated, report.outcome.stale) == (0, 0, 0), \
        context
    assert report.outcome.receipts["missing"] == 0, context
