"""A synthetic catalogue: movies, series and a few franchises with recurring people, so
that every kind of relation between titles exists."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from random import Random
from typing import Any, Final

from polystream.simulate import vocabulary as vocab
from polystream.simulate.catalog import SimTitle, assign_popularity, new_episode
from polystream.simulate.sampling import GENRES, Weighted
from polystream.simulate.wire import uuid7_text

_SERIES_SHARE: Final = 0.35
_FRANCHISE_SHARE: Final = 0.08
_TITLE_LANGUAGES: Final = Weighted.table(vocab.TITLE_LANGUAGES)


def _person(rng: Random) -> str:
    return f"{rng.choice(vocab.FIRST_NAMES)[0]} {rng.choice(vocab.LAST_NAMES)[0]}"


def _title_text(rng: Random) -> str:
    pattern = rng.choice(vocab.TITLE_PATTERNS)
    noun, noun2 = rng.sample(vocab.NOUNS, 2)
    return pattern.format(adj=rng.choice(vocab.ADJECTIVES), noun=noun, noun2=noun2)


def synopsis(rng: Random) -> str:
    return (
        f"{rng.choice(vocab.SYNOPSIS_WHO)} {rng.choice(vocab.SYNOPSIS_WHAT)} "
        f"{rng.choice(vocab.SYNOPSIS_WHEN)}."
    )


def _maturity(rng: Random, genres: Sequence[str]) -> str:
    if "kids" in genres:
        return "all"
    if "family" in genres or "animation" in genres:
        return rng.choice(("all", "7+"))
    if {"horror", "war", "crime"} & set(genres):
        return rng.choice(("16+", "18+"))
    return rng.choices(("all", "7+", "13+", "16+", "18+"), (10, 10, 40, 30, 10))[0]


def _genres(rng: Random) -> list[str]:
    count = rng.choices((1, 2, 3), (30, 50, 20))[0]
    chosen: list[str] = []
    while len(chosen) < count:
        genre = GENRES.pick(rng)
        if genre not in chosen:
            chosen.append(genre)
    return chosen


def _seasons(rng: Random, title_id: str) -> list[dict[str, Any]]:
    runtime = rng.choice((22, 25, 30, 42, 45, 50, 55, 58))
    seasons = []
    for number in range(1, rng.choices((1, 2, 3, 4, 5, 6), (30, 25, 18, 12, 9, 6))[0] + 1):
        count = rng.randint(6, 12)
        seasons.append(
            {
                "number": number,
                "title": rng.choice(vocab.SEASON_WORDS) if rng.random() < 0.3 else None,
                "episodes": [
                    new_episode(rng, title_id, number, episode, runtime)
                    for episode in range(1, count + 1)
                ],
            }
        )
    return seasons


def _original_title(rng: Random, language: str) -> str | None:
    words = vocab.ORIGINAL_WORDS.get(language)
    if words is None or rng.random() < 0.4:
        return None
    articles, nouns = words
    return f"{rng.choice(articles)} {rng.choice(nouns)}"


class _People:
    """Directors and actors recur across titles, so 'same director' relations exist."""

    def __init__(self, rng: Random, titles: int) -> None:
        self.directors = [_person(rng) for _ in range(max(4, titles // 6))]
        self.actors = [_person(rng) for _ in range(max(20, titles * 2))]
        # A few actors are in many titles, most in one or two: Zipf again.
        self._actor_cum = list(accumulate(1.0 / (rank + 1) for rank in range(len(self.actors))))

    def cast(self, rng: Random) -> list[dict[str, Any]]:
        names: list[str] = []
        for _ in range(rng.randint(3, 8)):
            name = rng.choices(self.actors, cum_weights=self._actor_cum)[0]
            if name not in names:
                names.append(name)
        cast = []
        for name in names:
            roll = rng.random()
            if roll < 0.5:
                character: str | None = _person(rng)
            elif roll < 0.7:
                character = rng.choice(vocab.CHARACTER_ROLES)
            else:
                character = None
            cast.append({"name": name, "character": character})
        return cast


def _payload(
    rng: Random,
    title_id: str,
    *,
    kind: str,
    title: str,
    year: int,
    genres: list[str],
    directors: list[str],
    cast: list[dict[str, Any]],
) -> dict[str, Any]:
    language = _TITLE_LANGUAGES.pick(rng)
    subtitles = [
        s for s in rng.sample(vocab.SUBTITLE_LANGUAGES, rng.randint(0, 6)) if s != language
    ]
    return {
        "title_id": title_id,
        "kind": kind,
        "version": 1,
        "title": title,
        "original_title": _original_title(rng, language) if language != "en" else None,
        "synopsis": synopsis(rng) if rng.random() < 0.9 else None,
        "year": year,
        "genres": genres,
        "people": {"directors": directors, "cast": cast},
        "languages": [language] if language == "en" or rng.random() < 0.5 else [language, "en"],
        "subtitle_languages": subtitles,
        "maturity_rating": _maturity(rng, genres),
        "runtime_minutes": rng.randint(78, 170) if kind == "movie" else None,
        "seasons": _seasons(rng, title_id) if kind == "series" else [],
    }


def _year(rng: Random, latest: int) -> int:
    # Catalogues lean recent: most titles are from the last two decades.
    return max(1930, latest - int(rng.expovariate(1 / 11)))


def synthetic_catalog(rng: Random, count: int, *, t_ms: int, latest_year: int) -> list[SimTitle]:
    """``count`` titles (movies, series, a few franchises), popularity by a random Zipf rank."""
    people = _People(rng, count)
    titles: list[SimTitle] = []
    while len(titles) < count:
        directors = [rng.choice(people.directors)]
        if rng.random() < 0.08:
            directors.append(rng.choice(people.directors))
        directors = list(dict.fromkeys(directors))
        genres = _genres(rng)
        name = _title_text(rng)
        if rng.random() < _FRANCHISE_SHARE and count - len(titles) >= 2:
            size = min(count - len(titles), rng.randint(2, 4))
            year = max(1960, _year(rng, latest_year) - 3 * size)
            franchise = name
            for part in range(size):
                title_id = uuid7_text(t_ms, rng)
                text = name if part == 0 else f"{name} {vocab.SEQUEL_SUFFIXES[part - 1]}"
                payload = _payload(
                    rng,
                    title_id,
                    kind="movie",
                    title=text,
                    year=min(latest_year, year),
                    genres=genres,
                    directors=directors if rng.random() < 0.7 else [rng.choice(people.directors)],
                    cast=people.cast(rng),
                )
                titles.append(SimTitle(title_id, payload, 0.0, 0.0, franchise))
                year += rng.randint(1, 5)
            continue
        title_id = uuid7_text(t_ms, rng)
        kind = "series" if rng.random() < _SERIES_SHARE else "movie"
        payload = _payload(
            rng,
            title_id,
            kind=kind,
            title=name,
            year=_year(rng, latest_year),
            genres=genres,
            directors=directors,
            cast=people.cast(rng),
        )
        titles.append(SimTitle(title_id, payload, 0.0, 0.0))
    assign_popularity(rng, titles)
    for title in titles:
        title.refresh_items()
    return titles
