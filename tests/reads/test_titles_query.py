"""The browse query: filters are values, never operators; cursors only fit their query; the
MongoDB reader and the in-memory one return the same pages for any query."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from polystream.domain.events import Genre, TitleKind
from polystream.domain.events.vocabulary import MaturityRating
from polystream.reads.titles import (
    BadCursor,
    TitleQuery,
    TitleSort,
    decode_cursor,
    encode_cursor,
    mongo_filter,
)
from polystream.settings import Settings

from .conftest import ReadHarness, memory_harness, stack_harness

ALLOWED_KEYS = {"removed", "kind", "genres", "year", "maturity_rating", "title", "$or"}

queries = st.builds(
    TitleQuery,
    kind=st.none() | st.sampled_from(TitleKind),
    genre=st.none() | st.sampled_from([Genre.DRAMA, Genre.COMEDY, Genre.CRIME]),
    year_from=st.none() | st.integers(1990, 2025),
    year_to=st.none() | st.just(2025),
    max_maturity=st.none() | st.sampled_from(MaturityRating),
    text=st.none() | st.sampled_from(["harbour", "a", "TRACK", "the ", "x"]),
    sort=st.sampled_from(TitleSort),
    limit=st.integers(1, 5),
)


@given(text=st.text(min_size=1, max_size=100))
def test_any_text_is_an_escaped_value(text: str) -> None:
    flt = mongo_filter(TitleQuery(text=text))
    assert set(flt) <= ALLOWED_KEYS
    pattern = flt["title"]["$regex"]
    assert re.search(pattern, f"x{text}y", re.IGNORECASE)  # matches itself, literally


def test_cursor_round_trip_and_refusals() -> None:
    query = TitleQuery(genre=Genre.DRAMA, sort=TitleSort.TITLE)
    cursor = encode_cursor(query, ("Night Harbour", "t01"))
    assert decode_cursor(cursor, query).after == ("Night Harbour", "t01")
    with pytest.raises(BadCursor, match="another query"):
        decode_cursor(cursor, TitleQuery(genre=Genre.COMEDY, sort=TitleSort.TITLE))
    newest = TitleQuery()
    bad_id = encode_cursor(newest, (2020, "$where"))
    with pytest.raises(BadCursor):
        decode_cursor(bad_id, newest)
    title_value_for_year_sort = encode_cursor(newest, ("1999", "t01"))
    with pytest.raises(BadCursor):
        decode_cursor(title_value_for_year_sort, newest)


@pytest.fixture(scope="module")
def both(request: pytest.FixtureRequest) -> Iterator[tuple[ReadHarness, ReadHarness]]:
    settings: Settings = request.getfixturevalue("settings")
    memory = memory_harness()
    real = stack_harness(settings, "prop")
    try:
        yield next(memory), next(real)
    finally:
        for gen in (memory, real):
            gen.close()


def _url(query: TitleQuery, cursor: str | None) -> str:
    params: dict[str, Any] = {"sort": query.sort.value, "limit": query.limit}
    for name, value in (("kind", query.kind), ("genre", query.genre),
                        ("year_from", query.year_from), ("year_to", query.year_to),
                        ("max_maturity", query.max_maturity), ("q", query.text),
                        ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return "/titles?" + urlencode(params)


@pytest.mark.stack
@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries)
def test_mongo_and_memory_readers_return_the_same_pages(
        both: tuple[ReadHarness, ReadHarness], query: TitleQuery) -> None:
    walks: list[list[list[dict[str, Any]]]] = []
    for harness in both:
        walk: list[list[dict[str, Any]]] = []
        cursor = None
        for _ in range(20):
            response = harness.client.get(_url(query, cursor))
            assert response.status_code == 200, response.text
            walk.append(response.json()["items"])
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
        walks.append(walk)
    assert walks[0] == walks[1]
    assert walks[0][-1] != [] or len(walks[0]) == 1
