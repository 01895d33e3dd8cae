"""/flags/{name}. Operators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.auth import Operator
from polystream.api.command_http import Options, answer, operator_command
from polystream.api.deps import Runtime
from polystream.api.flags import service
from polystream.api.flags.schemas import SetFlag

router = APIRouter(tags=["flags (operators)"], dependencies=[Operator])


@operator_command(router.put, "/flags/{name}", summary="Set a feature flag or runtime variable",
                  description="Publishes `flag.set`, globally or for one user (`scope`).")
async def set_flag(
    name: Annotated[str, Path(description="Flag name, e.g. player.next-episode-countdown.")],
    body: SetFlag,
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return answer(await service.set_flag(runtime, name, body, options))
