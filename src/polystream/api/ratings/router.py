"""/titles/{title_id}/ratings/{user_id}."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from polystream.api.auth import CurrentUser
from polystream.api.command_http import Options, answer, own_user_command
from polystream.api.deps import Runtime
from polystream.api.fields import TitleIdPath, UserIdPath
from polystream.api.ownership import own_user_id
from polystream.api.ratings import service
from polystream.api.ratings.schemas import RateTitle

router = APIRouter(tags=["ratings"])



@own_user_command(router.put, "/titles/{title_id}/ratings/{user_id}", summary="Rate a title",
                  description="Publishes `rating.submitted` (replaces the user's previous rating).")
async def rate_title(
    title_id: TitleIdPath, user_id: UserIdPath, body: RateTitle, principal: CurrentUser,
    runtime: Runtime, options: Options,
) -> JSONResponse:
    own_user_id(principal, user_id)
    return answer(await service.rate(runtime, title_id, user_id, body, options))


@own_user_command(router.delete, "/titles/{title_id}/ratings/{user_id}",
                  summary="Withdraw a rating", description="Publishes `rating.retracted`.")
async def unrate_title(
    title_id: TitleIdPath, user_id: UserIdPath, principal: CurrentUser, runtime: Runtime,
    options: Options,
) -> JSONResponse:
    own_user_id(principal, user_id)
    return answer(await service.unrate(runtime, title_id, user_id, options))
