"""Response shapes of the public catalog reads (for OpenAPI; bodies are built by the read
service, cached bodies are sent as stored)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from polystream.domain.events import Genre, RelationKind, TitleKind
from polystream.domain.events.vocabulary import MaturityRating


class TitleSummary(BaseModel):
    title_id: str
    kind: TitleKind
    title: str
    year: int
    genres: list[Genre]
    maturity_rating: MaturityRating
    runtime_minutes: int | None = Field(description="Movies only; null for series.")
    version: int = Field(description="The catalog version of this snapshot.")


class TitlePage(BaseModel):
    items: list[TitleSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and sort) for the next page; "
        "null on the last page.")


class RelatedTitle(BaseModel):
    title: TitleSummary
    hops: int = Field(ge=1, le=2, description="1: related directly; 2: through `via`.")
    relation: RelationKind = Field(description="Kind of the last relation of the path.")
    score: float = Field(description="Product of the relation weights along the path.")
    via: str | None = Field(description="The first-hop title a two-hop title is reached by.")


class RelatedTitles(BaseModel):
    title_id: str
    items: list[RelatedTitle]
