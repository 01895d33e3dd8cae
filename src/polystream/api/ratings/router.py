"""/titles/{title_id}/ratings/{user_id}."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from polystream.api.commands import Options, command_responses
from polystream.api.deps import Runtime
from polystream.api.fields import TitleIdPath, UserIdPath
from polystream.api.ratings import service
from polystream.api.ratings.schemas import RateTitle

router = APIRouter(tags=["ratings"])

_NO_AUTH_YET = (
    "\n\nNo per-user authorization yet: login and per-user access control come with the read "
    "API."
)


@router.put(
    "/titles/{title_id}/ratings/{user_id}",
    status_code=202,
    responses=command_responses(),
    summary="Rate a title",
    description="Publishes `rating.submitted` (replaces the user's previous rating)."
    + _NO_AUTH_YET,
)
async def rate_title(
    title_id: TitleIdPath, user_id: UserIdPath, body: RateTitle, runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return await service.rate(runtime, title_id, user_id, body, options)


@router.delete(
    "/titles/{title_id}/ratings/{user_id}",
    status_code=202,
    responses=command_responses(),
    summary="Withdraw a rating",
    description="Publishes `rating.retracted`." + _NO_AUTH_YET,
)
async def unrate_title(
    title_id: TitleIdPath, user_id: UserIdPath, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.unrate(runtime, title_id, user_id, options)
