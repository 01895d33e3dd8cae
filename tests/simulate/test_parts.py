"""The simulator's small parts, on their own: what the golden digests rely on without saying."""

from __future__ import annotations

from datetime import UTC, datetime
from random import Random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from polystream.simulate.billing import add_months
from polystream.simulate.sampling import TitleSampler, Weighted
from polystream.simulate.scheduling import Scheduler
from polystream.simulate.state import (
    ACTIVE,
    CANCELING,
    ENDED,
    PAST_DUE,
    PENDING,
    Sub,
    User,
    can_watch,
)
from polystream.simulate.synthetic import synthetic_catalog
from polystream.simulate.wire import from_ms, to_ms


@given(
    weights=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=12).filter(any),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_weighted_table_draws_exactly_like_random_choices(weights: list[int], seed: int) -> None:
    items = list(range(len(weights)))
    table = Weighted(items, weights)
    mine, theirs = Random(seed), Random(seed)
    assert [table.pick(mine) for _ in range(50)] == [
        theirs.choices(items, weights)[0] for _ in range(50)
    ]
    assert mine.random() == theirs.random()  # the same number of draws, too


def test_the_title_sampler_never_picks_a_removed_title() -> None:
    titles = synthetic_catalog(Random(1), 30, t_ms=0, latest_year=2025)
    for title in titles[::2]:
        title.removed = True
    sampler = TitleSampler(titles)
    rng = Random(2)
    picked = {sampler.pick(rng).title_id for _ in range(2000)}
    assert picked <= {title.title_id for title in titles[1::2]}
    assert len(picked) > 5


def test_add_months_keeps_the_time_and_clamps_the_day() -> None:
    jan31 = to_ms(datetime(2024, 1, 31, 13, 45, 7, tzinfo=UTC))
    assert from_ms(add_months(jan31)) == datetime(2024, 2, 29, 13, 45, 7, tzinfo=UTC)
    assert from_ms(add_months(jan31, 13)) == datetime(2025, 2, 28, 13, 45, 7, tzinfo=UTC)
    assert from_ms(add_months(jan31, -2)) == datetime(2023, 11, 30, 13, 45, 7, tzinfo=UTC)


def test_the_clock_runs_in_time_order_and_ties_in_scheduling_order() -> None:
    scheduler = Scheduler()
    out: list[tuple[int, Any]] = []

    def record(t: int, arg: Any) -> None:
        out.append((t, arg))
        if arg == "first":
            scheduler.at(t, record, "scheduled while running, same time")

    # Different handlers on one millisecond: only the order of scheduling decides.
    scheduler.at(20, record, "late")
    scheduler.at(10, record, "first")
    scheduler.at(10, lambda t, arg: out.extend([(t, arg), (t, "twice")]), "second")
    assert list(scheduler.run(out)) == [
        (10, "first"),
        (10, "second"),
        (10, "twice"),
        (10, "scheduled while running, same time"),
        (20, "late"),
    ]
    assert out == []  # drained after each action


def test_playback_needs_a_paid_subscription_or_a_canceled_one_until_its_period_ends() -> None:
    user = User(1, "u")
    assert not can_watch(user, 0)
    user.sub = sub = Sub("s", user, "basic")
    sub.period_end = 1000
    expected = {PENDING: False, ACTIVE: True, PAST_DUE: True, ENDED: False}
    for status, allowed in expected.items():
        sub.status = status
        assert can_watch(user, 5000) is allowed
    sub.status = CANCELING
    assert can_watch(user, 999)
    assert not can_watch(user, 1000)
