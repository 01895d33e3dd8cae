"""The outage drill's judgement of the reads asked while a server is down."""

from __future__ import annotations

from polystream.chaos.outage import READS, Callers, Outage


def _outage(reads: dict[str, list[tuple[float, int]]]) -> Outage:
    return Outage("redis", 8, 0, 1.0, 0.1, True, True, 0, reads)


def test_a_503_or_a_cached_200_within_the_deadline_passes() -> None:
    assert _outage({"/flags": [(0.2, 503), (0.1, 200)], "/me": [(1.9, 503)]}).reads_ok


def test_a_slow_answer_another_5xx_or_an_unasked_read_fails() -> None:
    assert not _outage({"/flags": [(2.5, 503)]}).reads_ok
    assert not _outage({"/flags": [(0.1, 500)]}).reads_ok
    assert not _outage({"/flags": [(0.1, 0)]}).reads_ok  # no answer at all
    assert not _outage({"/flags": []}).reads_ok
    assert "(FAILED)" in _outage({"/flags": [(0.1, 500)]}).reads_line()


def test_each_read_is_asked_as_its_caller_and_queries_miss_the_cache() -> None:
    callers = Callers({"Authorization": "Bearer u"}, {"Authorization": "Bearer o"}, "t1")
    assert callers.request("me:/me") == ("/me", "/me", {"Authorization": "Bearer u"})
    label, url, headers = callers.request("operator:/audit/events?limit=5")
    assert (label, url, headers) == ("/audit/events?limit=5", "/audit/events?limit=5",
                                     {"Authorization": "Bearer o"})
    assert callers.request("/titles/{title}/related")[1] == "/titles/t1/related"
    first, second = (callers.request("/titles?q={fresh}")[1] for _ in range(2))
    assert first != second and first.startswith("/titles?q=drill")
    assert READS["kafka"] == ()  # no read needs Kafka
