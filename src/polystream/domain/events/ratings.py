"""Payloads of the ratings family."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from polystream.domain.events.payload import Payload
from polystream.domain.events.types import Id, ReviewText


class RatingSubmitted(Payload):
    """A user's rating of a title (replaces their previous rating of it)."""

    user_id: Id
    title_id: Id
    stars: Annotated[StrictInt, Field(ge=1, le=5)]
    review: ReviewText | None = None


class RatingRetracted(Payload):
    """A user withdrew their rating of a title."""

    user_id: Id
    title_id: Id


__all__ = [
    "RatingRetracted",
    "RatingSubmitted",
]
