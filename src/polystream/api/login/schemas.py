"""Bodies of the login endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, StringConstraints, WithJsonSchema

from polystream.api.fields import PASSWORD_MAX_CHARS, RequestModel
from polystream.domain.events import Device

# Any string up to the longest password: a "too short" answer would only tell an attacker
# about the password policy, and every failure must look the same (401).
LoginPassword = Annotated[
    SecretStr,
    Field(min_length=1, max_length=PASSWORD_MAX_CHARS),
    WithJsonSchema({"type": "string", "format": "password", "writeOnly": True,
                    "minLength": 1, "maxLength": PASSWORD_MAX_CHARS}),
]
# Not the contract's Email: a malformed address is just a failed login, with no hint.
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=254)]


class Login(RequestModel):
    email: LoginEmail
    password: LoginPassword
    device: Device | None = Field(
        default=None,
        description="The client (kind and installation id), recorded in the login event. "
        "Default: a web client with a new id.",
    )


class AccessToken(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the session lives without being used; "
                            "every use extends it by as much.")


class LoginSessionView(BaseModel):
    session_id: str
    expires_at: datetime
    current: bool = Field(description="The session of the token making this request.")


class LoginSessions(BaseModel):
    sessions: list[LoginSessionView]


class SessionsRevoked(BaseModel):
    revoked: int = Field(description="How many sessions were ended.")
