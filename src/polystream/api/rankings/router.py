"""GET /rankings/{ranking} and GET /flags: public reads of the live store (Redis)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from polystream.api.rankings.schemas import PublicFlags, RankingPage
from polystream.api.reads import Reads, only_params, read_errors, read_responses
from polystream.domain.events import Genre
from polystream.reads.service import Ranking

router = APIRouter(tags=["rankings and flags (public reads)"])

MAX_RANKING = 100


@router.get(
    "/rankings/{ranking}",
    summary="A ranking of titles, optionally within one genre",
    response_model=RankingPage,
    responses=read_responses(422, 503),
    dependencies=[Depends(only_params("genre", "limit", "day"))],
)
async def ranking(
    ranking: Annotated[Ranking, Path(description="top-rated, most-watched or trending")],
    reads: Reads,
    genre: Genre | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RANKING)] = 10,
    day: Annotated[date | None, Query(description="most-watched: the UTC day (default "
                                      "today)")] = None,
) -> JSONResponse:
    with read_errors():
        return JSONResponse(await reads.ranking(ranking, genre, limit, day))


@router.get(
    "/flags",
    summary="The public feature flags",
    description="Global flags whose name starts with a public prefix (setting "
    "`reads.public_flag_prefixes`, default `public.`); every other flag is private to the "
    "services and never listed here.",
    response_model=PublicFlags,
    responses=read_responses(422, 503),
    dependencies=[Depends(only_params())],
)
async def public_flags(reads: Reads) -> JSONResponse:
    with read_errors():
        return JSONResponse({"flags": await reads.public_flags()})
