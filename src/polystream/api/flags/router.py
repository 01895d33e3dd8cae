"""/flags/{name}. Operators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.auth import Operator
from polystream.api.command_http import Options, answer, command_responses, command_route
from polystream.api.deps import Runtime
from polystream.api.errors import ErrorBody
from polystream.api.flags import service
from polystream.api.flags.schemas import SetFlag

router = APIRouter(tags=["flags (operators)"], dependencies=[Operator])


@command_route(
    router.put, "/flags/{name}",
    responses={
        **command_responses(),
        401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
        403: {"model": ErrorBody, "description": "Not an operator."},
    },
    summary="Set a feature flag or runtime variable",
    description="Publishes `flag.set`, globally or for one user (`scope`).\n\nOperators "
    "only: `Authorization: Bearer <token>` (an operator account's access_token or the "
    "operator token).",
)
async def set_flag(
    name: Annotated[str, Path(description="Flag name, e.g. player.next-episode-countdown.")],
    body: SetFlag,
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return answer(await service.set_flag(runtime, name, body, options))
