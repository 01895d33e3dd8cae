"""Request body of the rating command."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from polystream.api.fields import RequestModel
from polystream.domain.events import ReviewText


class RateTitle(RequestModel):
    stars: Annotated[StrictInt, Field(ge=1, le=5, description="1 to 5.")]
    review: ReviewText | None = None
