"""Controlled vocabularies and small value objects shared by several payload families."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, Final

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, Field

from polystream.domain.events.payload import ClosedModel
from polystream.domain.events.types import PERSONAL, Id, Language


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("items must be distinct")
    return values


_UNIQUE_ITEMS: Final[dict[str, Any]] = {"uniqueItems": True}


class Genre(StrEnum):
    """The catalogue's controlled genre vocabulary (also the per-genre ranking keys)."""

    ACTION = "action"
    ADVENTURE = "adventure"
    ANIMATION = "animation"
    COMEDY = "comedy"
    CRIME = "crime"
    DOCUMENTARY = "documentary"
    DRAMA = "drama"
    FAMILY = "family"
    FANTASY = "fantasy"
    HISTORY = "history"
    HORROR = "horror"
    KIDS = "kids"
    MUSIC = "music"
    MYSTERY = "mystery"
    REALITY = "reality"
    ROMANCE = "romance"
    SCIENCE_FICTION = "science_fiction"
    SPORT = "sport"
    THRILLER = "thriller"
    WAR = "war"
    WESTERN = "western"


class MaturityRating(StrEnum):
    """Minimum viewer age, from least to most restricted."""

    ALL = "all"
    AGE_7 = "7+"
    AGE_13 = "13+"
    AGE_16 = "16+"
    AGE_18 = "18+"


class DeviceKind(StrEnum):
    TV = "tv"
    WEB = "web"
    MOBILE = "mobile"
    TABLET = "tablet"
    CONSOLE = "console"
    SET_TOP_BOX = "set_top_box"


class _DistinctItems(GroupedMetadata):
    """A tuple's bounds, and its items distinct (checked, and said in the JSON Schema)."""

    def __init__(self, *, max_length: int, min_length: int = 0) -> None:
        self.field = Field(min_length=min_length or None, max_length=max_length,
                           json_schema_extra=_UNIQUE_ITEMS)

    def __iter__(self) -> Iterator[object]:
        yield self.field
        yield AfterValidator(_distinct)


Genres = Annotated[tuple[Genre, ...], _DistinctItems(max_length=10)]
SomeGenres = Annotated[tuple[Genre, ...], _DistinctItems(min_length=1, max_length=10)]
Languages = Annotated[tuple[Language, ...], _DistinctItems(max_length=20)]
SomeLanguages = Annotated[tuple[Language, ...], _DistinctItems(min_length=1, max_length=20)]


class Device(ClosedModel):
    """The client a user acts from."""

    kind: DeviceKind
    # An installation id is an online identifier of a person under GDPR.
    device_id: Annotated[Id, Field(json_schema_extra=PERSONAL)]


__all__ = [
    "Device",
    "DeviceKind",
    "Genre",
    "Genres",
    "Languages",
    "MaturityRating",
    "SomeGenres",
    "SomeLanguages",
]
