"""Request body of the flag command."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from polystream.api.fields import RequestModel
from polystream.domain.events import FlagValue


class SetFlag(RequestModel):
    value: FlagValue = Field(description="A JSON scalar (or null) or a flat object of scalars.")
    scope: Annotated[str, StringConstraints(max_length=80)] = Field(
        default="global", description="'global' or 'user:<user_id>'."
    )

    @field_validator("value", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A union reports one error per member, addressed by pydantic's internal type names
        # (body.value.dict[constrained-str,...].a.int); one plain sentence says it better.
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(
                "must be a boolean, number, string (at most 1024 characters), null, or an "
                "object of at most 32 such values"
            ) from None
