"""Importing a user's catalogue: valid CSV and JSON are accepted and simulated on; bad rows
are refused with the row and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polystream.domain.events import PlaybackStarted, RelationAdded, TitleUpserted, decode
from polystream.simulate import CatalogImportError, generate, load_catalog, parse_csv, parse_json

from .conftest import config
from .invariants import StreamModel

CSV = "\n".join(
    [
        "kind,title,year,genres,languages,maturity_rating,runtime_minutes,seasons,directors,"
        "cast,franchise,popularity",
        "movie,Quiet Harbour,1998,drama|mystery,de,16+,104,,Ines Marchand,"
        "Lena Vogt:Anna|Tomás Rivera,Quiet Harbour,",
        "movie,Quiet Harbour II,2003,drama|mystery,de|en,16+,110,,Ines Marchand,Lena Vogt:Anna,"
        "Quiet Harbour,",
        "movie,Quiet Harbour III,2009,drama,de,16+,99,,Ines Marchand,,Quiet Harbour,",
        "series,The Long Orbit,2021,science_fiction|drama,fr|en,13+,,8|10,Aiko Tanaka,"
        '"Aiko Tanaka:Dr. Sen, MD",,50',
        'movie,"Paper Lanterns, Again",2015,comedy|romance,en,all,92,,,,,',
        "",
    ]
)

JSON_CATALOG = {
    "titles": [
        {
            "title_id": "orbit-1",
            "kind": "series",
            "title": "The Long Orbit",
            "year": 2021,
            "genres": ["science_fiction", "drama"],
            "languages": ["fr", "en"],
            "subtitle_languages": ["en", "es-419"],
            "maturity_rating": "13+",
            "directors": ["Ines Marchand"],
            "cast": [{"name": "Tomás Rivera", "character": "Commander Ode"}, "Aiko Tanaka"],
            "seasons": [
                {"number": 1, "title": "Decay", "episodes": [
                    {"number": 1, "title": "Burn", "runtime_minutes": 55},
                    {"episode_id": "orbit-s1e2", "number": 2, "title": "Drift",
                     "runtime_minutes": 52},
                ]},
                {"number": 2, "episodes": [
                    {"number": 1, "title": "Return", "runtime_minutes": 58},
                ]},
            ],
            "version": 3,
        },
        {
            "title_id": "harbour-1",
            "kind": "movie",
            "title": "Quiet Harbour",
            "year": 1998,
            "genres": ["drama"],
            "languages": ["de"],
            "maturity_rating": "16+",
            "runtime_minutes": 104,
            "synopsis": "A lighthouse keeper finds a letter.",
        },
    ]
}  # fmt: skip


def test_a_valid_csv_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV, encoding="utf-8")
    entries = load_catalog(path)
    assert [e.title.title for e in entries] == [
        "Quiet Harbour", "Quiet Harbour II", "Quiet Harbour III", "The Long Orbit",
        "Paper Lanterns, Again",
    ]  # fmt: skip
    orbit = entries[3].title
    assert [len(s.episodes) for s in orbit.seasons] == [8, 10]
    assert orbit.people.cast[0].character == "Dr. Sen, MD"
    assert entries[3].popularity == 50
    assert entries[1].franchise == "Quiet Harbour"
    # Ids derived from kind, title and year: importing the same file twice is idempotent.
    assert [e.title.title_id for e in load_catalog(path)] == [e.title.title_id for e in entries]


def test_a_valid_json_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(JSON_CATALOG), encoding="utf-8")
    entries = load_catalog(path)
    orbit = entries[0].title
    assert orbit.version == 3
    assert [e.episode_id for e in orbit.seasons[0].episodes] == ["s01e01-orbit-1", "orbit-s1e2"]
    assert entries[1].title.runtime_minutes == 104
    # A bare list works too.
    assert len(parse_json(json.dumps(JSON_CATALOG["titles"]))) == 2


def test_the_imported_catalogue_is_published_and_simulated_on(tmp_path: Path) -> None:
    entries = parse_csv(CSV)
    events = [decode(e.value) for e in generate(config(seed=1, catalog=tuple(entries)), 20_000)]
    # The envelope validates type -> payload class one to one, so isinstance selects by type.
    upserts = [e.payload for e in events if isinstance(e.payload, TitleUpserted)]
    assert [p.title_id for p in upserts[:5]] == [e.title.title_id for e in entries]
    assert upserts[0] == entries[0].title  # published exactly as imported
    relations = {(p.from_title_id, p.to_title_id, p.kind.value)
                 for p in (e.payload for e in events) if isinstance(p, RelationAdded)}  # fmt: skip
    harbour, harbour2 = entries[0].title.title_id, entries[1].title.title_id
    assert (harbour, harbour2, "sequel") in relations
    assert (harbour2, harbour, "prequel") in relations
    assert (harbour, harbour2, "same_director") in relations
    ids = {e.title.title_id for e in entries}
    watched = {p.title_id for p in (e.payload for e in events) if isinstance(p, PlaybackStarted)}
    assert watched and watched <= ids | {p.title_id for p in upserts}
    model = StreamModel()
    for event in events:
        model.apply(event)


def _errors(text: str, *, csv: bool = True) -> list[str]:
    with pytest.raises(CatalogImportError) as caught:
        parse_csv(text) if csv else parse_json(text)
    return [str(error) for error in caught.value.errors]


def test_bad_csv_rows_are_refused_with_row_and_field() -> None:
    header = "kind,title,year,genres,languages,maturity_rating,runtime_minutes,seasons\n"
    rows = [
        "movie,Fine,2001,drama,en,13+,100,",  # row 1: valid
        "movie,No Runtime,2001,drama,en,13+,,",  # row 2
        "movie,Bad Year,nineteen,drama,en,13+,90,",  # row 3
        "movie,Bad Genre,2001,drama|telenovela,en,13+,90,",  # row 4
        "film,Bad Kind,2001,drama,en,13+,90,",  # row 5
        "series,Bad Seasons,2001,drama,en,13+,,3|x",  # row 6
        "movie,Future,2999,drama,en,13+,90,",  # row 7
        "movie,Too Many,2001,drama,en,13+,90,,extra",  # row 8
        "movie,,2001,drama,en,13+,90,",  # row 9
        "movie,Bad Rating,2001,drama,en,PG-13,90,",  # row 10
    ]
    errors = _errors(header + "\n".join(rows) + "\n")
    text = "\n".join(errors)
    assert not any(e.startswith("row 1 ") for e in errors)
    assert "row 2 (line 3), field '(row)': Value error, a movie needs runtime_minutes" in text
    assert "row 3 (line 4), field 'year': must be a whole number, got \"nineteen\"" in text
    assert "row 4 (line 5), field 'genres[1]': Input should be" in text
    assert "row 5 (line 6), field 'kind': must be 'movie' or 'series'" in text
    assert "row 6 (line 7), field 'seasons': must be a whole number" in text
    assert "row 7 (line 8), field 'year': Value error, must not be more than 5 years" in text
    assert "row 8 (line 9), field '(row)': has more cells than the header" in text
    assert "row 9 (line 10), field 'title': is required" in text
    assert "row 10 (line 11), field 'maturity_rating': Input should be" in text
    assert len(errors) == 9


def test_a_bad_csv_header_is_refused() -> None:
    errors = _errors("kind,title,year,genre,languages\nmovie,X,2000,drama,en\n")
    assert "row 0 (line 1), field 'genre': unknown column" in errors
    assert "row 0 (line 1), field 'genres': required column missing" in errors
    assert "row 0 (line 1), field 'maturity_rating': required column missing" in errors


def test_bad_json_rows_are_refused_with_row_and_field() -> None:
    good = JSON_CATALOG["titles"][1]
    bad = [
        good,
        {**good, "title_id": "x:y"},
        {**good, "title_id": "other", "genres": "drama"},
        {**good, "title_id": "third", "runtime_minutes": "104"},
        {**good, "title_id": "fourth", "cast": [{"name": ""}]},
        {**good},  # duplicate of row 1
        "not an object",
    ]
    errors = _errors(json.dumps(bad[:-1]), csv=False)
    text = "\n".join(errors)
    assert "row 2, field 'title_id': String should match pattern" in text
    assert "row 3, field 'genres': must be a list" in text
    assert "row 4, field 'runtime_minutes': must be a whole number (a JSON integer)" in text
    assert "row 5, field 'cast[0].name': String should have at least 1 character" in text
    assert "row 6, field 'title_id': duplicate title (same id as row 1)" in text
    assert _errors(json.dumps(bad), csv=False) == ["row 7, field '(row)': must be a JSON object"]


def test_unreadable_or_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogImportError, match="unknown catalogue format"):
        load_catalog(tmp_path / "catalog.xml")
    with pytest.raises(CatalogImportError, match="not valid JSON"):
        parse_json("{nope")
    with pytest.raises(CatalogImportError, match="no titles"):
        parse_json("[]")
    with pytest.raises(CatalogImportError, match="cannot read"):
        load_catalog(tmp_path / "missing.csv")
