"""The poison drill's judgement (`chaos/poison.py`) fails on a lost, doubled or mislabelled dead
letter and on a stalled partition; the drill itself runs on the stack in tests/chaos."""

from __future__ import annotations

import json

import pytest

from polystream.audit.dead_letters import dead_letter_document
from polystream.bus.ports import Record
from polystream.bus.topology import DeadLetterHeader, dead_letter_headers
from polystream.chaos.outcome import Outcome
from polystream.chaos.poison import (
    CARD_FIELDS,
    CARD_NUMBER,
    EVENT_KINDS,
    EVENT_TOPICS,
    MAX_STALL_S,
    Poison,
    PoisonReport,
    _event_poison,
    _receipt_poison,
    has_card_number,
)
from polystream.domain.errors import InvalidEvent
from polystream.domain.events import decode, looks_like_card_number, peek_type
from polystream.simulate import SimConfig, generate


def _poison(offset: int, *, dead_letters: list[tuple[str, str]] | None = None,
            stall: float | None = 1.0) -> Poison:
    p = Poison("polystream.users", "not_json", "malformed", "postgres", ("postgres", "audit"),
               produced_at=100.0, partition=0, offset=offset)
    p.dead_letters = [("malformed", "postgres")] if dead_letters is None else dead_letters
    if stall is not None:
        p.passed = {"postgres": 100.5, "audit": 100.0 + stall}
    return p


def _report(*poisons: Poison) -> PoisonReport:
    return PoisonReport(10, list(poisons), 1.0, Outcome(verify_exit=0, summary="same"))


def test_a_clean_run_passes() -> None:
    report = _report(_poison(1), _poison(2))
    assert report.ok
    assert report.stalls() == {("polystream.users", 0): 1.0}


@pytest.mark.parametrize("bad", [
    _poison(2, dead_letters=[]),
    _poison(2, dead_letters=[("malformed", "postgres")] * 2),
    _poison(2, dead_letters=[("validation", "postgres")]),
    _poison(2, dead_letters=[("malformed", "mongo")]),
    _poison(2, stall=MAX_STALL_S + 0.1),
    _poison(2, stall=None),
])
def test_a_lost_doubled_mislabelled_or_stalling_poison_record_fails(bad: Poison) -> None:
    assert not _report(_poison(1), bad).ok


def test_a_group_that_never_commits_past_it_is_a_stall() -> None:
    p = _poison(1)
    del p.passed["audit"]
    report = _report(p)
    assert report.stalled == [("polystream.users", 0)] and not report.ok


def test_a_card_number_found_in_headers_or_the_audit_fails_the_drill() -> None:
    p = _poison(2)
    p.kind, p.reason, p.dead_letters = "card_number", "validation", [("validation", "postgres")]
    assert _report(_poison(1), p).ok
    p.card_leaks = ["audit dead-letter document"]
    report = _report(_poison(1), p)
    assert report.leaked == [p] and not report.ok
    assert any("card_number: audit dead-letter document" in line for line in report.lines())


def test_the_card_number_is_found_however_its_digits_are_separated() -> None:
    assert looks_like_card_number(CARD_NUMBER)
    for text in (CARD_NUMBER, "4111 1111 1111 1111", "x4111-1111-1111-1111y",
                 '{"a": "4111.1111.1111.1111"}', "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"):
        assert has_card_number(text), text
    for text in ("411111111111111", "4111 1111 1111 1112", "uuid 4111a1111-1111"):
        assert not has_card_number(text), text


def _templates(seed: int) -> dict[str, dict[str, object]]:
    templates: dict[str, dict[str, object]] = {}
    for ev in generate(SimConfig(seed=seed, users=20, titles=3, posters=False), limit=50_000):
        templates.setdefault(ev.topic, json.loads(ev.value))
        if len(templates) == len(EVENT_TOPICS):
            break
    return templates


@pytest.mark.parametrize("seed", [3, 24, 1024])  # 24 and 1024: the drill's default and test
def test_a_card_number_in_every_topic_is_a_validation_error_that_never_repeats_it(
        seed: int) -> None:
    templates = _templates(seed)
    assert set(templates) == {t.value for t in EVENT_TOPICS} == {t.value for t in CARD_FIELDS}
    for topic, template in templates.items():
        value = _event_poison("card_number", template, "t")
        assert has_card_number(value.decode()), topic
        assert peek_type(value) == template["type"]  # still the topic's own type
        with pytest.raises(InvalidEvent) as caught:
            decode(value)
        error = caught.value
        assert error.code == "validation", topic
        assert "card" in error.reason, (topic, error.reason)  # refused for the card number
        # What a sink's dead letter carries (`runtime.deadletters`): code, detail (the
        # error's reason), event type; the field is named, its value never.
        headers = dead_letter_headers(error, topic=topic, partition=0, offset=0,
                                      consumer="postgres")
        assert headers[DeadLetterHeader.DETAIL.value] == error.reason.encode()
        assert headers[DeadLetterHeader.REASON.value] == b"validation"
        assert not has_card_number(json.dumps({k: v.decode() for k, v in headers.items()}))
        # The audit's document of that dead letter (the stack drill checks the stored one).
        doc = dead_letter_document(Record("polystream.deadletter", 0, 9, b"k", value, headers,
                                          1_765_000_000_000), secret=b"test-secret")
        assert doc.fields["dead_letter"]["reason"] == "validation"
        assert not has_card_number(json.dumps(doc.fields)), (topic, doc.fields)


def test_a_failed_verify_fails_the_drill() -> None:
    report = _report(_poison(1))
    report.outcome.lost = 1
    assert not report.ok


def test_every_event_kind_is_refused_with_its_reason() -> None:
    templates: dict[str, dict[str, object]] = {}
    for ev in generate(SimConfig(seed=3, users=20, titles=3, posters=False), limit=50_000):
        templates.setdefault(ev.topic, json.loads(ev.value))
        if len(templates) == 7:
            break
    for topic, template in templates.items():
        for kind, reason in EVENT_KINDS.items():
            with pytest.raises(InvalidEvent) as caught:
                decode(_event_poison(kind, template, "t"))
            assert caught.value.code == reason, (topic, kind)


def test_receipt_poison_is_no_receipt() -> None:
    from pydantic import ValidationError

    from polystream.domain.events import Receipt

    for kind in ("not_json", "not_object", "not_receipt"):
        with pytest.raises(ValidationError):
            Receipt.model_validate_json(_receipt_poison(kind, "t"))
