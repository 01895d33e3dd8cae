"""Rating commands -> rating.* events."""

from __future__ import annotations

from polystream.api.commands import Command, CommandOptions, CommandResult, submit
from polystream.api.deps import ApiRuntime
from polystream.api.ratings.schemas import RateTitle
from polystream.domain.events import RatingRetracted, RatingSubmitted

_IN_PATH = {"title_id": "path.title_id", "user_id": "path.user_id"}


async def rate(
    runtime: ApiRuntime, title_id: str, user_id: str, body: RateTitle, options: CommandOptions
) -> CommandResult:
    payload = {"title_id": title_id, "user_id": user_id, **body.model_dump()}
    return await submit(runtime, options, Command(RatingSubmitted, payload, where=_IN_PATH))


async def unrate(
    runtime: ApiRuntime, title_id: str, user_id: str, options: CommandOptions
) -> CommandResult:
    payload = {"title_id": title_id, "user_id": user_id}
    return await submit(runtime, options, Command(RatingRetracted, payload, where=_IN_PATH))
