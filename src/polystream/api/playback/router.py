"""/playback/sessions: viewing sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.auth import CurrentUser
from polystream.api.command_http import USER_AUTH, CommandRoutes, Options, answer
from polystream.api.deps import Runtime
from polystream.api.errors import ErrorBody
from polystream.api.ownership import check_stream_limit, check_viewing_session, own_user_id
from polystream.api.playback import service
from polystream.api.playback.schemas import PlaybackHeartbeat, StartPlayback, StopPlayback
from polystream.domain.events import Id

router = APIRouter(tags=["playback"])

SessionIdPath = Annotated[Id, Path(description="The viewing session's id (from the start).")]

command = CommandRoutes(USER_AUTH, note=(
    "\n\nNeeds a user's `access_token`; acts for that user only (a viewing session of "
    "another user answers 404)."
))


@command(
    router.post, "/playback/sessions", creates=True,
    more={409: {"model": ErrorBody, "description": "The plan's concurrent streams are all in "
                "use, or (with `wait`) a store refused the start."}},
    summary="Start a viewing session",
    description="Publishes `playback.started`; `resource_id` is the viewing session's id. "
    "The plan's concurrent-stream limit is checked against the live state first (409 when "
    "the plan's streams are all in use) and again by the Redis store (with `wait`, a refusal "
    "there also answers 409).",
)
async def start_playback(
    body: StartPlayback, principal: CurrentUser, runtime: Runtime, options: Options
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_stream_limit(runtime, user_id)
    return answer(await service.start(runtime, user_id, body, options))


@command(router.post, "/playback/sessions/{session_id}/progress", summary="Playback heartbeat",
         description="Publishes `playback.progress`.")
async def playback_progress(
    session_id: SessionIdPath, body: PlaybackHeartbeat, principal: CurrentUser,
    runtime: Runtime, options: Options,
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_viewing_session(runtime, principal, session_id)
    return answer(await service.progress(runtime, user_id, session_id, body, options))


@command(router.post, "/playback/sessions/{session_id}/stop", summary="Stop a viewing session",
         description="Publishes `playback.stopped`.")
async def stop_playback(
    session_id: SessionIdPath, body: StopPlayback, principal: CurrentUser,
    runtime: Runtime, options: Options,
) -> JSONResponse:
    user_id = own_user_id(principal, body.user_id)
    await check_viewing_session(runtime, principal, session_id)
    return answer(await service.stop(runtime, user_id, session_id, body, options))
