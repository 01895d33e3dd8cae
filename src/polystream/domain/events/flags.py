"""Payloads of the flags family: feature flags and runtime variables."""

from __future__ import annotations

import json
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from polystream.domain.events.cards import contains_card_data
from polystream.domain.events.limits import MAX_FLAG_VALUE_BYTES
from polystream.domain.events.payload import Payload
from polystream.domain.events.types import ID_PATTERN, MAX_INT64, PlainText, not_card_number

FlagScalar = (
    StrictBool
    | Annotated[StrictInt, Field(ge=-MAX_INT64, le=MAX_INT64)]
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[PlainText, StringConstraints(max_length=1024)]
    | None
)
FlagValue = (
    FlagScalar
    | Annotated[
        dict[Annotated[PlainText, StringConstraints(min_length=1, max_length=64)], FlagScalar],
        Field(max_length=32),
    ]
)


def _scope_not_card(value: str) -> str:
    # The user part is an id, refused as a card number like every id.
    not_card_number(value.removeprefix("user:"))
    return value


class FlagSet(Payload):
    """A feature flag or runtime variable changed, globally or for one user."""

    name: Annotated[
        str, StringConstraints(max_length=64, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
    ]
    value: FlagValue = Field(description="A JSON scalar or a flat object of scalars.")
    scope: Annotated[str, StringConstraints(pattern=rf"^(?:global|user:{ID_PATTERN})$"),
                     AfterValidator(_scope_not_card)] = Field(
        default="global", description="'global' or 'user:<user_id>'."
    )

    @model_validator(mode="after")
    def _value_is_small_and_clean(self) -> Self:
        encoded = json.dumps(self.value, separators=(",", ":"))
        if len(encoded.encode()) > MAX_FLAG_VALUE_BYTES:
            raise ValueError(f"value must encode to at most {MAX_FLAG_VALUE_BYTES} bytes")
        if contains_card_data(self.value):
            raise ValueError("value must not contain card data")
        return self


__all__ = [
    "FlagScalar",
    "FlagSet",
    "FlagValue",
]
