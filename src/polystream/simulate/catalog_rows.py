"""One row of an imported catalogue turned into a ``catalog.title_upserted`` payload.

CSV cells are text ('|'-separated lists, "name:character" cast, episode counts per season);
JSON values are typed. A problem stops the row with the field it is about
(:class:`RowProblem`); the payload itself is validated by the caller against the contract.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

from polystream.simulate.catalog import episode_id

#: Namespace of the title ids derived for imported rows without a ``title_id``: the same row
#: gets the same id on every import, whatever the seed, so re-importing a file is idempotent.
IMPORT_NAMESPACE: Final = uuid.UUID("6f1d0c52-5c1e-4d8a-9a57-3f0c7b6d2e10")


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
REQUIRED: Final = ("kind", "title", "year", "genres", "languages", "maturity_rating")
_LIST_COLUMNS: Final = ("genres", "directors", "cast", "languages", "subtitle_languages")


class RowProblem(Exception):
    """Why a row cannot be imported, and the field (column) it is about."""

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
    raise RowProblem(name, f"must be {expected}, got {json.dumps(value)[:40]}")


def _as_list(name: str, value: Any, *, from_csv: bool) -> list[Any]:
    if isinstance(value, list):
        return value
    if from_csv and isinstance(value, str):
        return [part.strip() for part in value.split("|") if part.strip()]
    raise RowProblem(name, "must be a list" + (" ('|'-separated)" if from_csv else ""))


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
                raise RowProblem("seasons", f"season {number} must have 1..500 episodes")
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


def row_payload(
    row: Mapping[str, Any], *, from_csv: bool
) -> tuple[dict[str, Any], str | None, float | None]:
    unknown = [key for key in row if key not in COLUMNS]
    if unknown:
        raise RowProblem(str(unknown[0]), f"unknown column (known: {', '.join(COLUMNS)})")
    values = {key: value for key, value in row.items() if value not in (None, "")}
    for name in REQUIRED:
        if name not in values:
            raise RowProblem(name, "is required")
    kind = values["kind"]
    if kind not in ("movie", "series"):
        raise RowProblem("kind", "must be 'movie' or 'series'")
    title = values["title"]
    if not isinstance(title, str):
        raise RowProblem("title", "must be text")
    year = _as_int("year", values["year"], from_csv=from_csv)
    title_id = values.get("title_id")
    if title_id is None:
        title_id = str(uuid.uuid5(IMPORT_NAMESPACE, f"{kind}|{title.strip().lower()}|{year}"))
    elif not isinstance(title_id, str):
        raise RowProblem("title_id", "must be text")
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
        raise RowProblem("franchise", "must be text")
    popularity: float | None = None
    if "popularity" in values:
        try:
            popularity = float(values["popularity"])
        except (TypeError, ValueError):
            raise RowProblem("popularity", "must be a number") from None
        if not popularity > 0 or popularity == float("inf"):
            raise RowProblem("popularity", "must be a positive number")
    return payload, franchise, popularity
