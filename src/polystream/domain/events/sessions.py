"""Payloads of the sessions family: login sessions, published by the API for the audit."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from polystream.domain.events.payload import Payload
from polystream.domain.events.types import PERSONAL, Id, IpAddress, PlainText, UtcDatetime
from polystream.domain.events.vocabulary import Device


class LoginMethod(StrEnum):
    PASSWORD = "password"


class SessionEndReason(StrEnum):
    LOGOUT = "logout"
    EXPIRED = "expired"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"
    USER_ERASED = "user_erased"


# Session events are published by the API after it created the session in Redis itself
# (authentication cannot wait for a queue); they feed the audit and the Redis sink's
# per-user session index. The bearer token is never in an event: ``session_id`` is a
# separate public handle, so reading the event log does not let anyone log in.


class SessionLoginStarted(Payload):
    """A user logged in; a session was created."""

    session_id: Id
    user_id: Id
    method: LoginMethod
    device: Device
    ip_address: IpAddress
    user_agent: (
        Annotated[
            PlainText, StringConstraints(max_length=512), Field(json_schema_extra=PERSONAL)
        ]
        | None
    ) = None
    expires_at: UtcDatetime


class SessionRefreshed(Payload):
    """Sliding expiry: a session was used and extended."""

    session_id: Id
    user_id: Id
    ip_address: IpAddress
    expires_at: UtcDatetime


class SessionEnded(Payload):
    """A session is over (logout, expiry, revocation)."""

    session_id: Id
    user_id: Id
    reason: SessionEndReason


__all__ = [
    "LoginMethod",
    "SessionEndReason",
    "SessionEnded",
    "SessionLoginStarted",
    "SessionRefreshed",
]
