"""Poison records go to the dead-letter topic exactly once and stall nothing (issue 12, item 4).

The bounded run of `polystream chaos poison`: 1,500 valid events at 100/s drained by one
`worker all`, with eight kinds of poison record (not JSON, not an object, unknown type, future
schema version, no event id, a payload breaking its model, a key that is not the aggregate's, a
card number in a free-text or id field) twice on each of the seven event topics, and three kinds
twice on the receipts topic, at random moments, each with its own key (spread over the
partitions).
Each must be in the dead-letter topic exactly once, by the topic's primary sink (the auditor
for receipts), with its reason; a card number must be neither in its dead letter's headers nor
in the audit index's dead-letter document; every group reading a topic must commit past each
poison record on it within 10 s; verify on the valid events: nothing lost, duplicated or stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polystream.bus.topology import Topic
from polystream.chaos.poison import EVENT_KINDS, EVENT_TOPICS, MAX_STALL_S, run_poison_drill
from polystream.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_every_poison_record_is_dead_lettered_once_with_its_reason_and_stalls_nothing(
        settings: Settings, tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_poison_drill(settings, events=1_500, rate=100, rounds=2, seed=1023,
                              workdir=tmp_path, timeout_s=300, log=lines.append)
    summary = "\n".join(report.lines())
    print("\n[chaos poison]\n" + summary)
    context = f"\n{summary}\n" + "\n".join(lines[-20:])
    topics = {p.topic for p in report.poisons}
    assert {t.value for t in EVENT_TOPICS} <= topics, context
    if settings.opensearch.enabled:
        assert Topic.RECEIPTS.value in topics, context
    for topic in EVENT_TOPICS:
        kinds = {p.kind for p in report.poisons if p.topic == topic.value}
        assert kinds == set(EVENT_KINDS) and len(kinds) >= 6, context
        assert "card_number" in kinds, context
    assert all(p.partition >= 0 for p in report.poisons), context
    assert report.missing == [], context
    assert report.doubled == [], context
    assert report.wrong == [], context
    # Headers checked always; the audit document too when the audit runs (a missing one is
    # a leak: it could not be checked).
    assert report.leaked == [], context
    assert all(len(p.dead_letters) == 1 and p.dead_lettered_right for p in report.poisons), context
    stalls = report.stalls()
    assert stalls and all(s is not None and s <= MAX_STALL_S for s in stalls.values()), context
    assert report.stalled == [], context
    out = report.outcome
    assert out.verify_exit == 0, context
    assert (out.lost, out.duplicated, out.stale) == (0, 0, 0), context
    assert report.ok, context
