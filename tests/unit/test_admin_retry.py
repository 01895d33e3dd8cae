"""Group requests to Kafka are asked again while the group's coordinator is loading."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException

from polystream.bus.admin import _group_result
from polystream.bus.ports import BusError


def _failed(code: int) -> Future[str]:
    fut: Future[str] = Future()
    fut.set_exception(KafkaException(KafkaError(code)))
    return fut


def _done(value: str) -> Future[str]:
    fut: Future[str] = Future()
    fut.set_result(value)
    return fut


def test_a_loading_coordinator_is_asked_again_until_it_answers() -> None:
    answers = [_failed(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
               _failed(KafkaError.NOT_COORDINATOR), _done("offsets")]
    asked: list[int] = []

    def issue() -> Future[str]:
        asked.append(1)
        return answers[len(asked) - 1]

    assert _group_result(issue, "committed offsets of g", 5.0) == "offsets"
    assert len(asked) == 3


def test_other_errors_fail_at_once_with_the_request_named() -> None:
    asked: list[int] = []

    def issue() -> Future[str]:
        asked.append(1)
        return _failed(KafkaError.GROUP_AUTHORIZATION_FAILED)

    with pytest.raises(BusError, match="committed offsets of g failed"):
        _group_result(issue, "committed offsets of g", 5.0)
    assert len(asked) == 1


def test_a_coordinator_that_never_loads_fails_within_the_timeout() -> None:
    with pytest.raises(BusError, match="failed"):
        _group_result(lambda: _failed(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), "x", 0.3)
