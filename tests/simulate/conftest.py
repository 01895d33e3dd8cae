"""Shared configurations and cached streams: generating and decoding 100k events takes a
couple of seconds, so each stream is built once per session."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from polystream.domain.events import Envelope, decode
from polystream.domain.examples import EXAMPLE_PASSWORD_HASH
from polystream.simulate import Behaviour, SimConfig, SimEvent, generate

#: Rare behaviours turned up so a short run shows every event type and every edge case
#: (erasure, refunds, retractions, title removals, dunning, cancellations).
BUSY = Behaviour(
    heartbeat_s=600,
    erasure_share=0.3,
    refund_share=0.3,
    retract_share=0.3,
    monthly_cancel_share=0.3,
    monthly_plan_change_share=0.3,
    payment_failure_share=0.3,
    title_removal_days=0.5,
    profile_update_days=3,
    over_limit_attempt_share=0.5,
    device_weights=(10, 20, 30, 40),
)


def config(**overrides: Any) -> SimConfig:
    """A SimConfig that skips the real argon2 hash (~0.1 s) unless a test is about it."""
    return replace(SimConfig(password_hash=EXAMPLE_PASSWORD_HASH), **overrides)


@pytest.fixture(scope="session")
def default_run() -> list[SimEvent]:
    """The issue-4 acceptance stream: 100k events of seed 7 with the default behaviour."""
    return list(generate(config(seed=7), 100_000))


@pytest.fixture(scope="session")
def busy_run() -> list[SimEvent]:
    """Four simulated months of a small, eventful population."""
    return list(generate(config(seed=3, users=80, titles=40, behaviour=BUSY), 80_000))


@pytest.fixture(scope="session")
def default_envelopes(default_run: list[SimEvent]) -> list[Envelope[Any]]:
    return [decode(event.value) for event in default_run]


@pytest.fixture(scope="session")
def busy_envelopes(busy_run: list[SimEvent]) -> list[Envelope[Any]]:
    return [decode(event.value) for event in busy_run]
