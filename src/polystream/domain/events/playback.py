"""Payloads of the playback family: a viewing session's start, heartbeats and stop."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from polystream.domain.events.payload import Payload
from polystream.domain.events.types import Id, Seconds
from polystream.domain.events.vocabulary import Device


class _Playback(Payload):
    viewing_session_id: Id
    user_id: Id
    title_id: Id
    episode_id: Id | None = Field(default=None, description="Set for series episodes.")
    position_seconds: Seconds
    duration_seconds: Annotated[Seconds, Field(gt=0)]
    device: Device

    @model_validator(mode="after")
    def _position_within_media(self) -> Self:
        if self.position_seconds > self.duration_seconds:
            raise ValueError("position_seconds must not exceed duration_seconds")
        return self


class PlaybackStarted(_Playback):
    """A stream started (counts against the plan's concurrent-stream limit)."""


class PlaybackProgress(_Playback):
    """Heartbeat while playing (continue-watching position, most-watched counters)."""


class PlaybackStopReason(StrEnum):
    USER = "user"
    COMPLETED = "completed"
    ERROR = "error"
    IDLE_TIMEOUT = "idle_timeout"
    STREAM_LIMIT = "stream_limit"


class PlaybackStopped(_Playback):
    """A stream ended; frees a concurrent-stream slot."""

    reason: PlaybackStopReason


__all__ = [
    "PlaybackProgress",
    "PlaybackStarted",
    "PlaybackStopReason",
    "PlaybackStopped",
]
