"""Payloads of the users family: accounts, their erasure, and preferences."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, StrictBool, model_validator

from polystream.domain.events.payload import Payload
from polystream.domain.events.types import (
    BirthYear,
    CountryCode,
    DisplayName,
    Email,
    Id,
    Language,
    PasswordHash,
)
from polystream.domain.events.vocabulary import Genres, MaturityRating, SomeLanguages


class UserRegistered(Payload):
    """A new account. The API hashes the password before publishing; never plain text."""

    user_id: Id
    email: Email
    display_name: DisplayName
    country: CountryCode
    birth_year: BirthYear
    password_hash: PasswordHash


class _UserKey(BaseModel):
    user_id: Id


class ProfileChanges(BaseModel):
    """The profile fields a change may carry, as the ``UserProfileUpdated`` payload and the
    API's update body both declare them: one definition, so both refuse the same values."""

    email: Email | None = None
    display_name: DisplayName | None = None
    country: CountryCode | None = None
    birth_year: BirthYear | None = None


# pydantic orders fields from the last base to the first, so ``_UserKey`` goes last: the key
# stays the first field and the encoded payload keeps its bytes.
class UserProfileUpdated(Payload, ProfileChanges, _UserKey):
    """A partial profile change: absent (null) fields are unchanged."""

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        changes = (name for name in type(self).model_fields if name != "user_id")
        if all(getattr(self, name) is None for name in changes):
            raise ValueError("at least one profile field must be set")
        return self


class ErasureReason(StrEnum):
    USER_REQUEST = "user_request"
    ADMIN = "admin"
    RETENTION = "retention"


class UserErased(Payload):
    """Right to erasure: stores delete or anonymise everything about the user."""

    user_id: Id
    reason: ErasureReason


class PreferenceFields(BaseModel):
    """A user's preference set as the ``PreferencesUpdated`` payload and the API's body both
    declare it: one definition, so the request refuses exactly what the contract refuses."""

    genres: Genres = Field(description="Favourite genres, most liked first.")
    languages: SomeLanguages = Field(description="Audio languages in order of preference.")
    subtitles: StrictBool
    subtitle_language: Language | None = None
    autoplay_next_episode: StrictBool
    autoplay_previews: StrictBool
    maturity_limit: MaturityRating = Field(description="Most restricted rating allowed.")


# pydantic orders fields from the last base to the first, so ``_UserKey`` goes last: the key
# stays the first field and the encoded payload keeps its bytes.
class PreferencesUpdated(Payload, PreferenceFields, _UserKey):
    """The full preference set (a snapshot, not a patch: the newest ``occurred_at`` wins)."""


__all__ = [
    "ErasureReason",
    "PreferenceFields",
    "PreferencesUpdated",
    "ProfileChanges",
    "UserErased",
    "UserProfileUpdated",
    "UserRegistered",
]
