"""Playback commands -> playback.* events."""

from __future__ import annotations

from uuid6 import uuid7

from polystream.api.commands import Command, CommandOptions, CommandResult, submit
from polystream.api.deps import ApiRuntime
from polystream.api.playback.schemas import PlaybackHeartbeat, StartPlayback, StopPlayback
from polystream.domain.events import PlaybackProgress, PlaybackStarted, PlaybackStopped

_SESSION_IN_PATH = {"viewing_session_id": "path.session_id"}


async def start(
    runtime: ApiRuntime, user_id: str, body: StartPlayback, options: CommandOptions
) -> CommandResult:
    session_id = str(uuid7())
    payload = {"viewing_session_id": session_id, **body.model_dump(), "user_id": user_id}
    return await submit(
        runtime,
        options,
        Command(PlaybackStarted, payload, creates=True, resource_id=session_id),
    )


async def progress(
    runtime: ApiRuntime, user_id: str, session_id: str, body: PlaybackHeartbeat,
    options: CommandOptions,
) -> CommandResult:
    payload = {"viewing_session_id": session_id, **body.model_dump(), "user_id": user_id}
    return await submit(
        runtime, options, Command(PlaybackProgress, payload, where=_SESSION_IN_PATH)
    )


async def stop(
    runtime: ApiRuntime, user_id: str, session_id: str, body: StopPlayback, options: CommandOptions
) -> CommandResult:
    payload = {"viewing_session_id": session_id, **body.model_dump(), "user_id": user_id}
    return await submit(
        runtime, options, Command(PlaybackStopped, payload, where=_SESSION_IN_PATH)
    )
