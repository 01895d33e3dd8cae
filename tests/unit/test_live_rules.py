"""The live-state rules of ``domain/live.py`` on their own, with no store around them (the
contract tests check both stores apply them identically)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from polystream.domain.events import PlanCode, ReceiptStatus
from polystream.domain.live import (
    DAY_MS,
    STREAM_LIMITS,
    LiveStoreConfig,
    active_since,
    cache_version,
    current_plan,
    erased_by,
    finished,
    from_ms,
    newer,
    outcome_of,
    rating_counts,
    scope_user,
    stream_limit,
    to_ms,
    top_rated_score,
    trending_weights,
)
from polystream.domain.outcomes import DUPLICATE, STORED


def test_event_time_orders_first_and_the_event_id_breaks_ties() -> None:
    assert newer(5, "b", None, None)
    assert newer(6, "a", "5", "z")
    assert not newer(4, "z", "5", "a")
    assert newer(5, "b", "5", "a")
    assert not newer(5, "a", "5", "a")  # the same event is not newer than itself


def test_events_up_to_the_erasure_are_stale_later_ones_are_not() -> None:
    assert erased_by(10, "10")
    assert not erased_by(11, "10")
    assert not erased_by(10, None)


def test_the_stream_limit_needs_a_known_plan_not_past_its_cancellation() -> None:
    some_plan, limit = next(iter(STREAM_LIMITS.items()))
    assert stream_limit(some_plan, "active", None, 99) == limit
    assert stream_limit(some_plan, "canceled", "100", 99) == limit
    assert stream_limit(some_plan, "canceled", "100", 100) is None
    assert stream_limit(None, None, None, 1) is None
    assert stream_limit("no-such-plan", "active", None, 1) is None


def test_the_current_plan_is_read_at_now() -> None:
    plan = next(iter(PlanCode))
    assert current_plan(plan.value, "active", None, 5) is plan
    assert current_plan(plan.value, "canceled", "10", 9) is plan
    assert current_plan(plan.value, "canceled", "10", 10) is None
    assert current_plan(None, None, None, 0) is None


def test_rating_deltas_count_a_user_once_per_title() -> None:
    assert rating_counts(4, 0) == (4, 1)  # first rating
    assert rating_counts(2, 4) == (-2, 0)  # changed
    assert rating_counts(0, 4) == (-4, -1)  # retracted


def test_the_bayesian_score_pulls_few_votes_towards_the_prior() -> None:
    config = LiveStoreConfig(bayes_c=10.0, bayes_m=3.0)
    assert top_rated_score(0, 0, config) == 3.0
    assert top_rated_score(5, 1, config) == pytest.approx(35 / 11)
    assert top_rated_score(500, 100, config) == pytest.approx(530 / 110)


def test_finished_past_the_ratio_only() -> None:
    config = LiveStoreConfig(finished_ratio=0.9)
    assert finished(91, 100, config)
    assert not finished(90, 100, config)


def test_trending_weighs_seven_days_halving_per_half_life_from_each_day_s_middle() -> None:
    config = LiveStoreConfig()
    noon = to_ms(datetime(2026, 3, 10, 12, tzinfo=UTC))
    weights = trending_weights(noon, config)
    assert [day for day, _ in weights][:2] == ["2026-03-10", "2026-03-09"]
    assert len(weights) == config.trending_days
    assert weights[0][1] == 1.0
    assert weights[1][1] == pytest.approx(0.5)
    # Before a day's middle its age is clamped at 0.
    assert trending_weights(noon - DAY_MS // 4, config)[0][1] == 1.0


def test_time_round_trips_exactly_in_milliseconds() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    assert from_ms(to_ms(moment)) == moment
    assert active_since(10_000_000, LiveStoreConfig(heartbeat_timeout_s=360)) == 9_640_000


def test_flag_scopes() -> None:
    assert scope_user("global") == ""
    assert scope_user("user:u1") == "u1"
    with pytest.raises(ValueError, match="flag scope"):
        scope_user("user:")


def test_outcome_codes() -> None:
    assert outcome_of("s") is STORED
    assert outcome_of("ds") is DUPLICATE
    assert outcome_of("tolder").status is ReceiptStatus.STALE
    waiting = outcome_of("wno active subscription")
    assert waiting.status is ReceiptStatus.REJECTED and waiting.retryable
    again = outcome_of("drno active subscription")
    assert again.reason == "already processed: rejected: no active subscription"
    with pytest.raises(ValueError, match="unexpected outcome code"):
        outcome_of("x")


def test_cache_version_counts_missing_as_zero() -> None:
    assert cache_version(None, "3") == "0.3"
    assert cache_version("2", None) == "2.0"


def test_the_in_memory_live_store_loads_no_redis_driver() -> None:
    # A fresh interpreter: this one may have loaded redis for other tests.
    code = (
        "import sys, polystream.sinks.memory_live\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"
