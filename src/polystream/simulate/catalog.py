"""The simulated catalogue: synthetic titles, imported titles, relations between them.

A title in the simulation is a :class:`SimTitle`: its current ``catalog.title_upserted``
payload (as JSON data) plus what the workload needs to know about it — popularity (Zipf),
quality (drives ratings), the flattened list of playable items, and whether it is live.

Imported catalogues (CSV or JSON, format in ``docs/simulator.md``) are validated row by row
against :class:`~polystream.domain.events.TitleUpserted`; every problem names its row and field.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from pathlib import Path
from random import Random
from typing import Any, Final

from pydantic import ValidationError

from polystream.domain.events import TitleUpserted
from polystream.simulate import vocabulary as vocab
from polystream.simulate.wire import uuid7_text

#: Zipf exponent of title popularity: rank r gets weight 1 / r**s.
ZIPF_EXPONENT: Final = 1.05

#: Namespace of the title ids derived for imported rows without a ``title_id``: the same row
#: gets the same id on every import, whatever the seed, so re-importing a file is idempotent.
IMPORT_NAMESPACE: Final = uuid.UUID("6f1d0c52-5c1e-4d8a-9a57-3f0c7b6d2e10")

_SERIES_SHARE: Final = 0.35
_FRANCHISE_SHARE: Final = 0.08


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One validated title of an imported catalogue."""

    title: TitleUpserted
    franchise: str | None = None
    popularity: float | None = None


@dataclass(eq=False, slots=True)
class SimTitle:
    """A title as the simulation tracks it (mutable: catalogue edits bump the version)."""

    title_id: str
    payload: dict[str, Any]
    popularity: float
    quality: float
    franchise: str | None = None
    #: (episode_id or None for a movie, duration in seconds), in viewing order.
    items: list[tuple[str | None, int]] = field(default_factory=list)
    removed: bool = False
    #: Viewing sessions currently open on it (a title being watched is never removed).
    watching: int = 0

    @property
    def version(self) -> int:
        return int(self.payload["version"])

    @property
    def genres(self) -> list[str]:
        return list(self.payload["genres"])

    @property
    def is_series(self) -> bool:
        return bool(self.payload["kind"] == "series")

    @property
    def directors(self) -> list[str]:
        people = self.payload.get("people") or {}
        return list(people.get("directors") or ())

    def refresh_items(self) -> None:
        if self.is_series:
            self.items = [
                (episode["episode_id"], episode["runtime_minutes"] * 60)
                for season in self.payload["seasons"]
                for episode in season["episodes"]
            ]
        else:
            self.items = [(None, self.payload["runtime_minutes"] * 60)]


def _weighted(rng: Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in table], [weight for _, weight in table])[0]


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
        genre = _weighted(rng, vocab.GENRE_WEIGHTS)
        if genre not in chosen:
            chosen.append(genre)
    return chosen


def episode_id(title_id: str, season: int, number: int) -> str:
    # Unique within the series (the contract's requirement) and readable in dashboards.
    return f"s{season:02d}e{number:02d}-{title_id}"[:64]


def new_episode(
    rng: Random, title_id: str, season: int, number: int, runtime: int
) -> dict[str, Any]:
    return {
        "episode_id": episode_id(title_id, season, number),
        "number": number,
        "title": rng.choice(vocab.EPISODE_WORDS),
        "runtime_minutes": max(5, runtime + rng.randint(-6, 6)),
        "synopsis": None,
    }


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
    language = _weighted(rng, vocab.TITLE_LANGUAGES)
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


def assign_popularity(
    rng: Random, titles: list[SimTitle], given: Sequence[float | None] = ()
) -> None:
    """Zipf popularity by a random rank (unless given) and a quality loosely tied to it."""
    ranks = list(range(1, len(titles) + 1))
    rng.shuffle(ranks)
    for index, (title, rank) in enumerate(zip(titles, ranks, strict=True)):
        explicit = given[index] if index < len(given) else None
        title.popularity = explicit if explicit is not None else 1.0 / rank**ZIPF_EXPONENT
        # Popular titles are somewhat better rated on average, with plenty of exceptions.
        bonus = 0.4 if rank <= max(1, len(titles) // 10) else 0.0
        title.quality = min(4.8, max(1.6, rng.gauss(3.4, 0.6) + bonus))


def imported_catalog(rng: Random, entries: Sequence[CatalogEntry]) -> list[SimTitle]:
    titles = [
        SimTitle(
            entry.title.title_id,
            entry.title.model_dump(mode="json"),
            0.0,
            0.0,
            entry.franchise,
        )
        for entry in entries
    ]
    assign_popularity(rng, titles, [entry.popularity for entry in entries])
    for title in titles:
        title.refresh_items()
    return titles


# --- relations ---------------------------------------------------------------------------

Relation = tuple[str, str, str, float]
"""(from_title_id, to_title_id, kind, weight)"""


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 0.0


def derive_relations(rng: Random, titles: Sequence[SimTitle]) -> list[Relation]:
    """Franchise order (sequel/prequel/same franchise), shared directors, genre similarity."""
    edges: dict[tuple[str, str, str], float] = {}
    franchises: dict[str, list[SimTitle]] = {}
    directors: dict[str, list[SimTitle]] = {}
    for title in titles:
        if title.franchise:
            franchises.setdefault(title.franchise, []).append(title)
        for name in title.directors[:1]:
            directors.setdefault(name, []).append(title)
    for members in franchises.values():
        ordered = sorted(members, key=lambda t: (t.payload["year"], t.title_id))
        for earlier, later in pairwise(ordered):
            edges[(earlier.title_id, later.title_id, "sequel")] = 1.0
            edges[(later.title_id, earlier.title_id, "prequel")] = 1.0
        for a in ordered:
            for b in ordered:
                if a is not b:
                    edges[(a.title_id, b.title_id, "same_franchise")] = 0.9
    for members in directors.values():
        if len(members) < 2:
            continue
        for title in members:
            others = [m for m in members if m is not title]
            for other in rng.sample(others, min(2, len(others))):
                edges[(title.title_id, other.title_id, "same_director")] = 0.6
    if len(titles) > 1:
        for title in titles:
            sample = rng.sample(list(titles), min(12, len(titles)))
            scored = sorted(
                (
                    (jaccard(title.genres, other.genres), index, other)
                    for index, other in enumerate(sample)
                    if other is not title
                ),
                key=lambda item: (-item[0], item[1]),
            )
            for score, _, other in scored[:3]:
                if score > 0:
                    edges[(title.title_id, other.title_id, "similar")] = round(0.1 + 0.9 * score, 2)
    return [(a, b, kind, weight) for (a, b, kind), weight in edges.items()]


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of an imported catalogue: where (row, field) and what."""

    row: int
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}, field {self.field!r}: {self.message}"


class CatalogImportError(ValueError):
    """The catalogue file cannot be imported; ``errors`` lists every problem found."""

    def __init__(self, message: str, errors: Sequence[RowError] = ()) -> None:
        self.errors = tuple(errors)
        lines = [message, *(f"  {error}" for error in self.errors[:50])]
        if len(self.errors) > 50:
            lines.append(f"  ... and {len(self.errors) - 50} more")
        super().__init__("\n".join(lines))


#: Columns of the CSV format (and keys of the JSON format).
COLUMNS: Final = (
    "title_id",
    "kind",
    "title",
    "original_title",
    "synopsis",
    "year",
    "genres",
    "directors",
    "cast",
    "languages",
    "subtitle_languages",
    "maturity_rating",
    "runtime_minutes",
    "seasons",
    "episode_runtime_minutes",
    "version",
    "franchise",
    "popularity",
)
_REQUIRED: Final = ("kind", "title", "year", "genres", "languages", "maturity_rating")
_LIST_COLUMNS: Final = ("genres", "directors", "cast", "languages", "subtitle_languages")
_INT_COLUMNS: Final = ("year", "runtime_minutes", "episode_runtime_minutes", "version")


class _RowProblem(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _as_int(name: str, value: Any, *, from_csv: bool = True) -> int:
    # CSV cells are text, so digits are parsed there; in JSON a number in quotes is a typo
    # worth reporting, as the event contract would (strict integers).
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if from_csv and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    expected = "a whole number" if from_csv else "a whole number (a JSON integer)"
    raise _RowProblem(name, f"must be {expected}, got {json.dumps(value)[:40]}")


def _as_list(name: str, value: Any, *, from_csv: bool) -> list[Any]:
    if isinstance(value, list):
        return value
    if from_csv and isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    raise _RowProblem(name, "must be a list" + (" ('|'-separated)" if from_csv else ""))


def _cast_member(entry: Any) -> Any:
    if isinstance(entry, str):
        name, sep, character = entry.partition(":")
        return {"name": name.strip(), "character": (character.strip() or None) if sep else None}
    return entry


def _series_seasons(raw: Any, title_id: str, runtime: int, *, from_csv: bool) -> list[Any]:
    items = _as_list("seasons", raw, from_csv=from_csv)
    if items and all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in items):
        # Episode counts per season: the episodes are generated (numbered, titled "Episode N").
        seasons = []
        for number, count_text in enumerate(items, start=1):
            count = _as_int("seasons", count_text, from_csv=from_csv)
            if not 1 <= count <= 500:
                raise _RowProblem("seasons", f"season {number} must have 1..500 episodes")
            seasons.append(
                {
                    "number": number,
                    "episodes": [
                        {
                            "episode_id": episode_id(title_id, number, episode),
                            "number": episode,
                            "title": f"Episode {episode}",
                            "runtime_minutes": runtime,
                        }
                        for episode in range(1, count + 1)
                    ],
                }
            )
        return seasons
    seasons = []
    for index, season in enumerate(items, start=1):
        if isinstance(season, Mapping) and isinstance(season.get("episodes"), list):
            season = dict(season)
            number = season.get("number", index)
            number = number if isinstance(number, int) else index
            episodes = []
            for position, episode in enumerate(season["episodes"], start=1):
                if isinstance(episode, Mapping) and "episode_id" not in episode:
                    episode_number = episode.get("number", position)
                    if not isinstance(episode_number, int):
                        episode_number = position
                    episode = {
                        "episode_id": episode_id(title_id, number, episode_number),
                        **episode,
                    }
                episodes.append(episode)
            season["episodes"] = episodes
        seasons.append(season)
    return seasons


def _row_payload(
    row: Mapping[str, Any], *, from_csv: bool
) -> tuple[dict[str, Any], str | None, float | None]:
    unknown = [key for key in row if key not in COLUMNS]
    if unknown:
        raise _RowProblem(str(unknown[0]), f"unknown column (known: {', '.join(COLUMNS)})")
    values = {key: value for key, value in row.items() if value not in (None, "")}
    for name in _REQUIRED:
        if name not in values:
            raise _RowProblem(name, "is required")
    kind = values["kind"]
    if kind not in ("movie", "series"):
        raise _RowProblem("kind", "must be 'movie' or 'series'")
    title = values["title"]
    if not isinstance(title, str):
        raise _RowProblem("title", "must be text")
    year = _as_int("year", values["year"], from_csv=from_csv)
    title_id = values.get("title_id")
    if title_id is None:
        title_id = str(uuid.uuid5(IMPORT_NAMESPACE, f"{kind}|{title.strip().lower()}|{year}"))
    elif not isinstance(title_id, str):
        raise _RowProblem("title_id", "must be text")
    lists = {
        name: _as_list(name, values[name], from_csv=from_csv)
        for name in _LIST_COLUMNS
        if name in values
    }
    payload: dict[str, Any] = {
        "title_id": title_id,
        "kind": kind,
        "version": (
            _as_int("version", values["version"], from_csv=from_csv) if "version" in values else 1
        ),
        "title": title,
        "year": year,
        "genres": lists["genres"],
        "people": {
            "directors": lists.get("directors", []),
            "cast": [_cast_member(entry) for entry in lists.get("cast", [])],
        },
        "languages": lists["languages"],
        "subtitle_languages": lists.get("subtitle_languages", []),
        "maturity_rating": values["maturity_rating"],
    }
    for optional in ("original_title", "synopsis"):
        if optional in values:
            payload[optional] = values[optional]
    if "runtime_minutes" in values:
        payload["runtime_minutes"] = _as_int(
            "runtime_minutes", values["runtime_minutes"], from_csv=from_csv
        )
    if "seasons" in values:
        runtime = (
            _as_int("episode_runtime_minutes", values["episode_runtime_minutes"], from_csv=from_csv)
            if "episode_runtime_minutes" in values
            else 45
        )
        payload["seasons"] = _series_seasons(
            values["seasons"], title_id, runtime, from_csv=from_csv
        )
    franchise = values.get("franchise")
    if franchise is not None and not isinstance(franchise, str):
        raise _RowProblem("franchise", "must be text")
    popularity: float | None = None
    if "popularity" in values:
        try:
            popularity = float(values["popularity"])
        except (TypeError, ValueError):
            raise _RowProblem("popularity", "must be a number") from None
        if not popularity > 0 or popularity == float("inf"):
            raise _RowProblem("popularity", "must be a positive number")
    return payload, franchise, popularity


def _field_of(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts[:1] == ["people"] and len(parts) > 1:
        parts = parts[1:]  # directors/cast are top-level columns of the file
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(row)"


_Row = tuple[int, int | None, "Mapping[str, Any] | _RowProblem"]


def _validate_rows(rows: Iterable[_Row], *, from_csv: bool) -> list[CatalogEntry]:
    entries: list[CatalogEntry] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row_number, line, row in rows:
        try:
            if isinstance(row, _RowProblem):
                raise row
            payload, franchise, popularity = _row_payload(row, from_csv=from_csv)
        except _RowProblem as problem:
            errors.append(RowError(row_number, problem.field, problem.message, line))
            continue
        try:
            title = TitleUpserted.model_validate(payload)
        except ValidationError as exc:
            errors.extend(
                RowError(row_number, _field_of(detail["loc"]), detail["msg"], line)
                for detail in exc.errors(include_input=False)
            )
            continue
        if title.title_id in seen:
            errors.append(
                RowError(
                    row_number,
                    "title_id",
                    f"duplicate title (same id as row {seen[title.title_id]}); "
                    "give each row its own title_id",
                    line,
                )
            )
            continue
        seen[title.title_id] = row_number
        entries.append(CatalogEntry(title, franchise, popularity))
    if errors:
        raise CatalogImportError(f"the catalogue has {len(errors)} problem(s)", errors)
    if not entries:
        raise CatalogImportError("the catalogue has no titles")
    return entries


def load_catalog(path: Path) -> list[CatalogEntry]:
    """Read and validate a catalogue file (``.csv`` or ``.json``; see docs/simulator.md)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise CatalogImportError(f"{path}: unknown catalogue format (use a .csv or .json file)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogImportError(f"cannot read {path}: {exc}") from None
    return parse_csv(text) if suffix == ".csv" else parse_json(text)


def parse_csv(text: str) -> list[CatalogEntry]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        raise CatalogImportError("the CSV file is empty (a header row is required)")
    header = [name.strip() for name in reader.fieldnames]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in _REQUIRED if name not in header]
    if unknown or missing:
        errors = [RowError(0, name, "unknown column", 1) for name in unknown]
        errors += [RowError(0, name, "required column missing", 1) for name in missing]
        raise CatalogImportError("the CSV header is not valid (row 0 is the header)", errors)
    reader.fieldnames = header

    def rows() -> Iterator[_Row]:
        for number, row in enumerate(reader, start=1):
            if None in row:
                yield (
                    number,
                    reader.line_num,
                    _RowProblem("(row)", f"has more cells than the header's {len(header)} columns"),
                )
                continue
            yield (
                number,
                reader.line_num,
                {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()},
            )

    return _validate_rows(rows(), from_csv=True)


def parse_json(text: str) -> list[CatalogEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogImportError(f"not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("titles"), list):
        data = data["titles"]
    if not isinstance(data, list):
        raise CatalogImportError('the JSON file must be a list of titles or {"titles": [...]}')
    rows: list[_Row] = []
    errors: list[RowError] = []
    for number, item in enumerate(data, start=1):
        if isinstance(item, Mapping):
            rows.append((number, None, item))
        else:
            errors.append(RowError(number, "(row)", "must be a JSON object"))
    if errors:
        raise CatalogImportError(f"the catalogue has {len(errors)} problem(s)", errors)
    return _validate_rows(rows, from_csv=False)
