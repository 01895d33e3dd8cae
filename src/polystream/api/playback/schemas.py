"""Request bodies of the playback commands."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from polystream.api.fields import RequestModel
from polystream.api.ownership import USER_ID_NOTE
from polystream.domain.events import Device, Id, PlaybackStopReason, Seconds


class _Playback(RequestModel):
    user_id: Id | None = Field(default=None, description=USER_ID_NOTE)
    title_id: Id
    episode_id: Id | None = Field(default=None, description="Set for series episodes.")
    position_seconds: Seconds
    duration_seconds: Annotated[Seconds, Field(gt=0)]
    device: Device


class StartPlayback(_Playback):
    position_seconds: Seconds = 0


class PlaybackHeartbeat(_Playback):
    """Sent periodically while playing."""


class StopPlayback(_Playback):
    reason: PlaybackStopReason = PlaybackStopReason.USER
