"""Group requests to Kafka are asked again while the group's coordinator is loading."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from polystream.bus.admin import _group_result
from polystream.bus.ports import BusError


def _failed(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


def test_a_loading_coordinator_is_asked_again_until_it_answers() -> None:
    answers: list[KafkaException | str] = [_failed(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
                                           _failed(KafkaError.NOT_COORDINATOR), "offsets"]
    asked: list[float] = []

    def ask(left: float) -> str:
        asked.append(left)
        answer = answers[len(asked) - 1]
        if isinstance(answer, KafkaException):
            raise answer
        return answer

    assert _group_result(ask, "committed offsets of g", 5.0) == "offsets"
    assert len(asked) == 3
    # Each attempt is given only what is left of the whole budget.
    assert 0 < asked[-1] < asked[0] <= 5.0


def test_other_errors_fail_at_once_with_the_request_named() -> None:
    asked: list[float] = []

    def ask(left: float) -> str:
        asked.append(left)
        raise _failed(KafkaError.GROUP_AUTHORIZATION_FAILED)

    with pytest.raises(BusError, match="committed offsets of g failed"):
        _group_result(ask, "committed offsets of g", 5.0)
    assert len(asked) == 1


def test_a_coordinator_that_never_loads_fails_within_the_timeout() -> None:
    def ask(left: float) -> str:
        raise _failed(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)

    started = time.monotonic()
    with pytest.raises(BusError, match="failed"):
        _group_result(ask, "x", 0.3)
    assert time.monotonic() - started < 2.0
