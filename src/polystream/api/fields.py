"""Request-side field types shared by the routers.

Most request fields reuse the event contract's own types (`Id`, `Email`, `Cents`, ...), so the
OpenAPI document shows the real constraints and a bad value is refused with the same message a
consumer would give. Two differences are deliberate:

* instants: the contract's datetimes are *strict* (they only take JSON strings on the wire),
  and FastAPI validates bodies in Python mode, where strict means "a datetime object"; the
  request type parses ISO 8601 strings and still refuses epoch numbers and naive times;
* the password, which never reaches an event (only its argon2id hash does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    WithJsonSchema,
)

from polystream.domain.events import Id
from polystream.domain.events.types import PlainText, bounded_utc

PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 128


class RequestModel(BaseModel):
    """A command body: closed, like the events it becomes (a field nobody declared is a
    client bug, and silently dropping it would hide it)."""

    model_config = ConfigDict(extra="forbid")


def _iso_text(value: Any) -> Any:
    if not isinstance(value, (str, datetime)):
        raise ValueError("must be an ISO 8601 date-time string with an offset, like "
                         "2025-01-15T12:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(bounded_utc)]
"""An instant in a request: ISO 8601 with an offset, within the contract's range (so no date
arithmetic on it can overflow)."""


def _password_policy(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not PASSWORD_MIN_CHARS <= len(text) <= PASSWORD_MAX_CHARS:
        raise ValueError(
            f"must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters long"
        )
    if not text.strip():
        raise ValueError("must not be blank")
    return value


Password = Annotated[
    SecretStr,
    AfterValidator(_password_policy),
    WithJsonSchema(
        {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": PASSWORD_MIN_CHARS,
            "maxLength": PASSWORD_MAX_CHARS,
        }
    ),
]

SearchText = PlainText
"""Free text in a query: no control characters (they reach the search index verbatim)."""

UserIdPath = Annotated[Id, Path(description="The user's id.")]
TitleIdPath = Annotated[Id, Path(description="The title's id.")]
