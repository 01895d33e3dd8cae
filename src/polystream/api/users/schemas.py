"""Request bodies of the user commands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from polystream.api.fields import Password, RequestModel
from polystream.domain.events import (
    BirthYear,
    CountryCode,
    DisplayName,
    Email,
    PreferenceFields,
    ProfileChanges,
)


class RegisterUser(RequestModel):
    email: Email
    password: Password = Field(
        description="12 to 128 characters. Hashed with argon2id by the API; never stored, "
        "logged or published in plain text."
    )
    display_name: DisplayName
    country: CountryCode = Field(description="ISO 3166-1 alpha-2, e.g. PT.")
    birth_year: BirthYear


class UpdateProfile(RequestModel, ProfileChanges):
    """Only the fields present change; at least one is required."""

    @field_validator("email", "display_name", "country", "birth_year", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Profile fields cannot be erased, so null could only mean "unchanged", which is what
        # leaving the field out already says; refusing it avoids a silent surprise.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it unchanged")
        return value


class SetPreferences(RequestModel, PreferenceFields):
    """The full preference set (replaces the previous one)."""


REGISTRATION_DETAIL = (
    "registration received: if the email can be registered, the account is created within "
    "seconds; then log in with POST /auth/login"
)


class RegistrationAccepted(BaseModel):
    """The one answer to every valid registration, taken email or not."""

    status: Literal["accepted"] = "accepted"
    detail: str = REGISTRATION_DETAIL
