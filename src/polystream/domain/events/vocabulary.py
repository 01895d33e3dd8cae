"""Controlled vocabularies and small value objects shared by several payload families."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final

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


Genres = Annotated[
    tuple[Genre, ...],
    Field(max_length=10, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
SomeGenres = Annotated[
    tuple[Genre, ...],
    Field(min_length=1, max_length=10, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
Languages = Annotated[
    tuple[Language, ...],
    Field(max_length=20, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
SomeLanguages = Annotated[
    tuple[Language, ...],
    Field(min_length=1, max_length=20, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]


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
