"""Payloads of the catalog family: titles, relations between them, and their images."""

from __future__ import annotations

import base64
import binascii
import hashlib
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from polystream.domain.events.images import ImageType, InvalidImage, inspect_image
from polystream.domain.events.limits import MAX_ASSET_BYTES
from polystream.domain.events.payload import ClosedModel, Payload
from polystream.domain.events.types import (
    Id,
    LongText,
    Name,
    ReleaseYear,
    RuntimeMinutes,
    Sha256Hex,
    TitleText,
    Version,
    Weight,
)
from polystream.domain.events.vocabulary import (
    Languages,
    MaturityRating,
    SomeGenres,
    SomeLanguages,
)


class TitleKind(StrEnum):
    MOVIE = "movie"
    SERIES = "series"


class CastMember(ClosedModel):
    name: Name
    character: Name | None = None


class People(ClosedModel):
    directors: Annotated[tuple[Name, ...], Field(max_length=20)] = ()
    cast: Annotated[tuple[CastMember, ...], Field(max_length=200)] = ()


class Episode(ClosedModel):
    episode_id: Id = Field(description="Referenced by playback events.")
    number: Annotated[StrictInt, Field(ge=1, le=10_000)]
    title: Name
    runtime_minutes: RuntimeMinutes
    synopsis: LongText | None = None


class Season(ClosedModel):
    number: Annotated[StrictInt, Field(ge=0, le=200)] = Field(description="0 holds specials.")
    title: Name | None = None
    episodes: Annotated[tuple[Episode, ...], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _episode_numbers_unique(self) -> Self:
        numbers = [episode.number for episode in self.episodes]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"episode numbers must be unique within season {self.number}")
        return self


# JSON Schema cannot express "movie needs runtime_minutes, series needs seasons" through
# pydantic's generator, so the rule is added to the exported schema explicitly.
_TITLE_KIND_RULES: Final[dict[str, Any]] = {
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "movie"}}},
            "then": {
                "required": ["runtime_minutes"],
                "properties": {"runtime_minutes": {"type": "integer"}, "seasons": {"maxItems": 0}},
            },
        },
        {
            "if": {"properties": {"kind": {"const": "series"}}},
            "then": {
                "required": ["seasons"],
                "properties": {"runtime_minutes": {"type": "null"}, "seasons": {"minItems": 1}},
            },
        },
    ]
}


class TitleFields(BaseModel):
    """A title's state as the ``TitleUpserted`` payload and the API's upsert body both declare
    it: one definition, so the request refuses exactly what the contract refuses."""

    kind: TitleKind
    version: Version
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


class _TitleKey(BaseModel):
    title_id: Id


# pydantic orders fields from the last base to the first, so ``_TitleKey`` goes last: the key
# stays the first field and the encoded payload keeps its bytes.
class TitleUpserted(Payload, TitleFields, _TitleKey):
    """The full current state of a movie or series (a snapshot).

    ``version`` increases with every edit of the title; stores keep the highest version they
    have seen, so a late or replayed older snapshot never overwrites a newer one. Movies
    carry ``runtime_minutes``; series carry ``seasons`` with their episodes.
    """

    model_config = ConfigDict(json_schema_extra=_TITLE_KIND_RULES)

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        if self.kind is TitleKind.MOVIE:
            if self.runtime_minutes is None:
                raise ValueError("a movie needs runtime_minutes")
            if self.seasons:
                raise ValueError("a movie has no seasons")
        else:
            if not self.seasons:
                raise ValueError("a series needs at least one season")
            if self.runtime_minutes is not None:
                raise ValueError("a series has no runtime_minutes (episodes have)")
            numbers = [season.number for season in self.seasons]
            if len(set(numbers)) != len(numbers):
                raise ValueError("season numbers must be unique")
            episode_ids = [e.episode_id for season in self.seasons for e in season.episodes]
            if len(set(episode_ids)) != len(episode_ids):
                raise ValueError("episode ids must be unique within the series")
        return self


class TitleRemoved(Payload):
    """The title leaves the catalogue. ``version`` is greater than the last upsert's."""

    title_id: Id
    version: Version


class RelationKind(StrEnum):
    SIMILAR = "similar"
    SEQUEL = "sequel"
    PREQUEL = "prequel"
    SAME_FRANCHISE = "same_franchise"
    SAME_DIRECTOR = "same_director"
    REMAKE = "remake"


class _Relation(Payload):
    """A directed edge between two titles; keyed by ``from_title_id``."""

    from_title_id: Id
    to_title_id: Id
    kind: RelationKind

    @model_validator(mode="after")
    def _not_to_itself(self) -> Self:
        if self.from_title_id == self.to_title_id:
            raise ValueError("a title cannot be related to itself")
        return self


class RelationAdded(_Relation):
    """Adds (or re-weights) the edge ``from -kind-> to``."""

    weight: Weight = Field(description="Strength of the relation, 0..1 (ranks suggestions).")


class RelationRemoved(_Relation):
    """Removes the edge ``from -kind-> to``."""


class AssetKind(StrEnum):
    POSTER = "poster"
    BACKDROP = "backdrop"
    THUMBNAIL = "thumbnail"




class AssetUploaded(Payload):
    """An image for a title, carried inline as base64.

    The bytes travel inside the event (not as a reference to some other storage) so that the
    MongoDB sink can write them to GridFS from the event alone: replay rebuilds the assets,
    and no second system has to be reachable and consistent. The price is a size limit
    (:data:`MAX_ASSET_BYTES`); display images fit comfortably. ``size_bytes`` and ``sha256``
    are checked against the decoded bytes, and the bytes must be a well-formed image of
    ``content_type`` (header, dimensions and structure read, no trailing data: see
    :mod:`.images`).
    """

    asset_id: Id
    title_id: Id
    kind: AssetKind
    content_type: ImageType
    size_bytes: Annotated[StrictInt, Field(gt=0, le=MAX_ASSET_BYTES)]
    sha256: Sha256Hex
    data_base64: Annotated[
        str, StringConstraints(min_length=4, max_length=(MAX_ASSET_BYTES + 2) // 3 * 4)
    ] = Field(description="The image, standard base64 with padding.")

    @property
    def data(self) -> bytes:
        """The image bytes."""
        return base64.b64decode(self.data_base64, validate=True)

    @model_validator(mode="after")
    def _bytes_match_metadata(self) -> Self:
        try:
            data = self.data
        except binascii.Error:
            raise ValueError("data_base64 is not valid base64") from None
        if len(data) != self.size_bytes:
            raise ValueError("size_bytes does not match the decoded data")
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError("sha256 does not match the decoded data")
        try:
            info = inspect_image(data)
        except InvalidImage as exc:
            raise ValueError(f"data is not a usable image: {exc}") from None
        if info.type is not self.content_type:
            raise ValueError(f"data is not a {self.content_type.value} image")
        return self


__all__ = [
    "AssetKind",
    "AssetUploaded",
    "CastMember",
    "Episode",
    "ImageType",
    "People",
    "RelationAdded",
    "RelationKind",
    "RelationRemoved",
    "Season",
    "TitleFields",
    "TitleKind",
    "TitleRemoved",
    "TitleUpserted",
]
