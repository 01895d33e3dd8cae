"""The base models of the contract: every payload, and every value nested in one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClosedModel(BaseModel):
    """Frozen, closed, and never echoing input values in error messages."""

    # hide_input_in_errors: ValidationError messages end up in logs and dead-letter headers,
    # and the input may be a password hash or a card token.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Payload(ClosedModel):
    """Base class of every event payload."""


__all__ = ["ClosedModel", "Payload"]
