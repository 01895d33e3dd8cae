"""Browsing the catalog: the query, its sort orders and the opaque keyset cursor.

One query model serves both catalog readers: :func:`mongo_filter` turns it into a MongoDB
filter, :func:`matches` and :func:`sort_key` are the same rules in Python for the in-memory
store, so both return the same pages (the contract tests hold them to it).

Every user input reaches MongoDB as a *value*, never as a key or an operator: enums are
checked against their vocabulary, the text query is regex-escaped, and the cursor is decoded
into typed fields whose shape is checked before use (a cursor is only ever compared with
``$lt``/``$gt``). Paging is keyset (``year``/``title`` then ``_id``), so a page costs the
same wherever it is and concurrent inserts never shift items between pages the way
``skip`` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from polystream.domain.events import Genre, TitleKind
from polystream.domain.events.types import ID_PATTERN
from polystream.domain.events.vocabulary import MaturityRating

#: Page size bounds of ``GET /titles``.
DEFAULT_PAGE: Final = 20
MAX_PAGE: Final = 100
MAX_TEXT: Final = 100

_ID: Final = re.compile(rf"^{ID_PATTERN}$")
#: Order of the ratings, least restricted first: ``max_maturity=13+`` keeps all, 7+, 13+.
MATURITY_ORDER: Final = tuple(MaturityRating)

Document = dict[str, Any]


class TitleSort(StrEnum):
    NEWEST = "newest"  # year descending, then id
    OLDEST = "oldest"  # year ascending, then id
    TITLE = "title"  # title ascending (code point order), then id


class BadCursor(ValueError):
    """The cursor was not made by this server for this query."""


@dataclass(frozen=True, slots=True)
class TitleQuery:
    kind: TitleKind | None = None
    genre: Genre | None = None
    year_from: int | None = None
    year_to: int | None = None
    max_maturity: MaturityRating | None = None
    text: str | None = None
    sort: TitleSort = TitleSort.NEWEST
    limit: int = DEFAULT_PAGE
    #: Where the previous page ended: (sort value, title id).
    after: tuple[int | str, str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if self.text is not None and not 1 <= len(self.text) <= MAX_TEXT:
            raise ValueError(f"text must be 1 to {MAX_TEXT} characters")
        if (
            self.year_from is not None
            and self.year_to is not None
            and self.year_from > self.year_to
        ):
            raise ValueError("year_from must not be after year_to")

    def filters_digest(self) -> str:
        """Identifies the filters and the sort (not the position): a cursor is only valid for
        the query that produced it."""
        canonical = json.dumps(
            [
                self.kind,
                self.genre,
                self.year_from,
                self.year_to,
                self.max_maturity,
                self.text,
                self.sort,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def cache_key(self) -> str:
        """The whole query (position and page size included), for the page cache."""
        position = None if self.after is None else list(self.after)
        canonical = json.dumps([self.filters_digest(), self.limit, position],
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def allowed_maturities(self) -> list[str] | None:
        if self.max_maturity is None:
            return None
        last = MATURITY_ORDER.index(self.max_maturity)
        return [rating.value for rating in MATURITY_ORDER[: last + 1]]


def sort_field(sort: TitleSort) -> str:
    return "title" if sort is TitleSort.TITLE else "year"


def position_of(doc: Mapping[str, Any], sort: TitleSort) -> tuple[int | str, str]:
    """The cursor position of a title document (or read model: ``_id`` or ``title_id``)."""
    title_id = str(doc.get("_id", doc.get("title_id")))
    value = doc["title"] if sort is TitleSort.TITLE else int(doc["year"])
    return value, title_id


# --- the cursor ----------------------------------------------------------------------------


def encode_cursor(query: TitleQuery, last: tuple[int | str, str]) -> str:
    raw = json.dumps({"f": query.filters_digest(), "v": last[0], "i": last[1]},
                     separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: TitleQuery) -> TitleQuery:
    """``query`` continued after ``cursor``; :class:`BadCursor` when it does not fit."""
    if len(cursor) > 1024:
        raise BadCursor("the cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this server issued") from None
    if not isinstance(data, dict) or set(data) != {"f", "v", "i"}:
        raise BadCursor("the cursor is not one this server issued")
    if data["f"] != query.filters_digest():
        raise BadCursor("the cursor belongs to another query (filters or sort changed)")
    title_id, value = data["i"], data["v"]
    if not isinstance(title_id, str) or not _ID.fullmatch(title_id):
        raise BadCursor("the cursor is not one this server issued")
    if query.sort is TitleSort.TITLE:
        valid = isinstance(value, str) and 0 < len(value) <= 300
    else:
        valid = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10_000
    if not valid:
        raise BadCursor("the cursor is not one this server issued")
    return replace(query, after=(value, title_id))


# --- MongoDB -------------------------------------------------------------------------------


def mongo_filter(query: TitleQuery) -> Document:
    """The filter of a page; every input is a value (see the module docstring)."""
    flt: Document = {"removed": {"$ne": True}}
    if query.kind is not None:
        flt["kind"] = TitleKind(query.kind).value
    if query.genre is not None:
        flt["genres"] = Genre(query.genre).value
    years: Document = {}
    if query.year_from is not None:
        years["$gte"] = int(query.year_from)
    if query.year_to is not None:
        years["$lte"] = int(query.year_to)
    if years:
        flt["year"] = years
    maturities = query.allowed_maturities()
    if maturities is not None:
        flt["maturity_rating"] = {"$in": maturities}
    if query.text is not None:
        flt["title"] = {"$regex": re.escape(query.text), "$options": "i"}
    if query.after is not None:
        value, title_id = query.after
        field = sort_field(query.sort)
        before = "$lt" if query.sort is TitleSort.NEWEST else "$gt"
        flt["$or"] = [
            {field: {before: value}},
            {field: value, "_id": {"$gt": title_id}},
        ]
    return flt


def mongo_sort(sort: TitleSort) -> list[tuple[str, int]]:
    direction = -1 if sort is TitleSort.NEWEST else 1
    return [(sort_field(sort), direction), ("_id", 1)]


# --- the same rules in Python (the in-memory store) -----------------------------------------


def matches(doc: Mapping[str, Any], query: TitleQuery) -> bool:
    """Does a stored title document belong to the page's filter (the keyset included)?"""
    if doc.get("removed"):
        return False
    if query.kind is not None and doc["kind"] != query.kind.value:
        return False
    if query.genre is not None and query.genre.value not in doc["genres"]:
        return False
    year = int(doc["year"])
    if query.year_from is not None and year < query.year_from:
        return False
    if query.year_to is not None and year > query.year_to:
        return False
    maturities = query.allowed_maturities()
    if maturities is not None and doc["maturity_rating"] not in maturities:
        return False
    if query.text is not None and query.text.lower() not in str(doc["title"]).lower():
        return False
    if query.after is not None:
        return _after(position_of(doc, query.sort), query.after, query.sort)
    return True


def _after(position: tuple[int | str, str], after: tuple[int | str, str],
           sort: TitleSort) -> bool:
    value, title_id = position
    last_value, last_id = after
    if value == last_value:
        return title_id > last_id
    if sort is TitleSort.NEWEST:
        return int(value) < int(last_value)
    return value > last_value  # type: ignore[operator]


def sort_key(sort: TitleSort) -> Any:
    if sort is TitleSort.NEWEST:
        return lambda doc: (-int(doc["year"]), str(doc["_id"]))
    if sort is TitleSort.OLDEST:
        return lambda doc: (int(doc["year"]), str(doc["_id"]))
    return lambda doc: (str(doc["title"]), str(doc["_id"]))


__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "BadCursor",
    "TitleQuery",
    "TitleSort",
    "decode_cursor",
    "encode_cursor",
    "matches",
    "mongo_filter",
    "mongo_sort",
    "sort_key",
]
