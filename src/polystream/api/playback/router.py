"""/playback/sessions: viewing sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from polystream.api.commands import Options, command_responses
from polystream.api.deps import Runtime
from polystream.api.playback import service
from polystream.api.playback.schemas import PlaybackHeartbeat, StartPlayback, StopPlayback
from polystream.domain.events import Id

router = APIRouter(tags=["playback"])

SessionIdPath = Annotated[Id, Path(description="The viewing session's id (from the start).")]

_NO_AUTH_YET = (
    "\n\nNo per-user authorization yet: login and per-user access control come with the read "
    "API."
)


@router.post(
    "/playback/sessions",
    status_code=202,
    responses=command_responses(creates=True),
    summary="Start a viewing session",
    description="Publishes `playback.started`; `resource_id` is the viewing session's id. "
    "The plan's concurrent-stream limit is enforced by the Redis store (with `wait`, a "
    "refusal answers 409)." + _NO_AUTH_YET,
)
async def start_playback(body: StartPlayback, runtime: Runtime, options: Options) -> JSONResponse:
    return await service.start(runtime, body, options)


@router.post(
    "/playback/sessions/{session_id}/progress",
    status_code=202,
    responses=command_responses(),
    summary="Playback heartbeat",
    description="Publishes `playback.progress`." + _NO_AUTH_YET,
)
async def playback_progress(
    session_id: SessionIdPath, body: PlaybackHeartbeat, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.progress(runtime, session_id, body, options)


@router.post(
    "/playback/sessions/{session_id}/stop",
    status_code=202,
    responses=command_responses(),
    summary="Stop a viewing session",
    description="Publishes `playback.stopped`." + _NO_AUTH_YET,
)
async def stop_playback(
    session_id: SessionIdPath, body: StopPlayback, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.stop(runtime, session_id, body, options)
