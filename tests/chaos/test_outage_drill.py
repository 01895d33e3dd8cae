"""Each server stopped for a while under flowing traffic costs nothing (issue 12, item 4).

The bounded run of `polystream chaos outage`: ~2,000 events paced while PostgreSQL, Redis,
FerretDB, Kafka and OpenSearch are each stopped for 8 s and started again; the drill's groups
must be back to their pre-outage lag within 60 s, /healthz must answer within 2 s throughout,
each read that needs the stopped server (a logged-in user's `/me`, the rankings, an uncached
catalog query, the operator's audit search) must answer 503 within 2 s, or 200 where the
Redis cache still serves it, `/readyz` must name the stopped server in its checks, and every
store must then match the events (`verify`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.chaos.outage import run_outage_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_each_server_stopped_under_traffic_loses_nothing(settings: Settings,
                                                        tmp_path: Path) -> None:
    lines: list[str] = []
    # 20 titles: with the default 300 the first 2,000 events would all be catalog events.
    report = run_outage_drill(settings, events=2_000, down_s=8, rate=25, seed=1019,
                              users=200, titles=20, workdir=tmp_path, timeout_s=400,
                              log=lines.append)
    summary = "\n".join(report.lines())
    print("\n[chaos outage]\n" + summary)
    context = f"\n{summary}\n" + "\n".join(lines[-20:])
    assert len(report.outages) >= 4, context
    for o in report.outages:
        assert o.recovered_s is not None and o.recovered_s < 60, context
        assert o.healthz_ok, context
        assert o.reads_ok, context
        assert o.readyz_named, context  # every server has its /readyz check
    needing = {o.server: o for o in report.outages if o.reads}
    assert {"postgres", "redis", "ferretdb"} <= needing.keys(), context
    # A store that is down is said so: at least one of its reads answered 503.
    for server in ("postgres", "redis", "ferretdb"):
        assert any(code == 503 for answers in needing[server].reads.values()
                   for _, code in answers), context
    assert report.outcome.verify_exit == 0, context
    assert (report.outcome.lost, report.outcome.duplicated, report.outcome.stale) == (0, 0, 0), \
        context
