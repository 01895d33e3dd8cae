"""Importing a user's catalogue (CSV or JSON, format in ``docs/simulator.md``).

Rows are validated one by one against :class:`~polystream.domain.events.TitleUpserted`;
every problem names its row and field, and all of them are reported at once.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from polystream.domain.events import TitleUpserted
from polystream.simulate.catalog import CatalogEntry
from polystream.simulate.catalog_rows import COLUMNS, REQUIRED, RowProblem, row_payload


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


def _field_of(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts[:1] == ["people"] and len(parts) > 1:
        parts = parts[1:]  # directors/cast are top-level columns of the file
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(row)"


_Row = tuple[int, int | None, "Mapping[str, Any] | RowProblem"]


def _validate_rows(rows: Iterable[_Row], *, from_csv: bool) -> list[CatalogEntry]:
    entries: list[CatalogEntry] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row_number, line, row in rows:
        try:
            if isinstance(row, RowProblem):
                raise row
            payload, franchise, popularity = row_payload(row, from_csv=from_csv)
        except RowProblem as problem:
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
    missing = [name for name in REQUIRED if name not in header]
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
                    RowProblem("(row)", f"has more cells than the header's {len(header)} columns"),
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
