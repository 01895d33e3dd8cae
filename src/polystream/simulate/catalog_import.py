"""Importing a user's catalogue (CSV or JSON, format in ``docs/simulator.md``).

Rows are validated one by one against :class:`~polystream.domain.events.TitleUpserted`;
every problem names its row and field, and all of them are reported at once.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from polystream.domain.events import TitleUpserted
from polystream.simulate.catalog import CatalogEntry, episode_id

#: Namespace of the title ids derived for imported rows without a ``title_id``: the same row
#: gets the same id on every import, whatever the seed, so re-importing a file is idempotent.
IMPORT_NAMESPACE: Final = uuid.UUID("6f1d0c52-5c1e-4d8a-9a57-3f0c7b6d2e10")


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
