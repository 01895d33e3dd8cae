"""Response shapes of the public live reads."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from polystream.domain.events import Genre
from polystream.reads.service import Ranking


class RankedTitle(BaseModel):
    rank: int = Field(ge=1)
    title_id: str
    score: float = Field(description="top-rated: Bayesian average of the stars; most-watched: "
                         "viewing sessions started that day; trending: the last 7 days' "
                         "counts with a one-day half-life.")


class RankingPage(BaseModel):
    ranking: Ranking
    genre: Genre | None
    day: date | None = Field(default=None, description="most-watched only: the UTC day.")
    items: list[RankedTitle]


class PublicFlags(BaseModel):
    flags: dict[str, Any] = Field(description="Public flags only (their names start with a "
                                  "configured prefix, `public.` by default): name -> value.")
