"""Request bodies of the catalog commands."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from polystream.api.fields import RequestModel
from polystream.domain.events import (
    Id,
    Languages,
    LongText,
    MaturityRating,
    People,
    RelationKind,
    ReleaseYear,
    RuntimeMinutes,
    Season,
    SomeGenres,
    SomeLanguages,
    TitleKind,
    TitleText,
    Weight,
)


class UpsertTitle(RequestModel):
    """The full current state of a movie or series (the title id is in the path).

    ``version`` must grow with every edit: the stores keep the highest version they have seen,
    so an older snapshot never overwrites a newer one (with `wait`, it answers 409 stale).
    Movies carry ``runtime_minutes``; series carry ``seasons`` with their episodes.
    """

    kind: TitleKind
    version: Annotated[StrictInt, Field(ge=1)]
    title: TitleText
    original_title: TitleText | None = None
    synopsis: LongText | None = None
    year: ReleaseYear
    genres: SomeGenres
    people: People = People()
    languages: SomeLanguages = Field(description="Audio languages.")
    subtitle_languages: Languages = ()
    maturity_rating: MaturityRating
    runtime_minutes: RuntimeMinutes | None = Field(default=None, description="Movies only.")
    seasons: Annotated[tuple[Season, ...], Field(max_length=100)] = Field(
        default=(), description="Series only; season numbers unique."
    )


class AddRelation(RequestModel):
    from_title_id: Id
    to_title_id: Id
    kind: RelationKind
    weight: Weight = Field(description="Strength of the relation, 0..1.")
