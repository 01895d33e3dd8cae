"""The base models of the contract: every payload, and every value nested in one."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class ClosedModel(BaseModel):
    """Frozen, closed, and never echoing input values in error messages."""

    # hide_input_in_errors: ValidationError messages end up in logs and dead-letter headers,
    # and the input may be a password hash or a card token.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Payload(ClosedModel):
    """Base class of every event payload."""

    #: The event type this payload is the fact of (``"rating.submitted"``), so that building
    #: and dispatching events goes by class. Set once per registered class, by the registry
    #: (:mod:`polystream.domain.events.registry`), which is the one table of event types.
    event_type: ClassVar[str]


P = TypeVar("P", bound=Payload)


__all__ = ["ClosedModel", "P", "Payload"]
