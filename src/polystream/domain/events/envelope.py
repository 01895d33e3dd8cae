"""The envelope: what travels on Kafka around every payload, and its model per event type."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Final, Generic, Self, TypeVar, cast
from uuid import UUID

from pydantic import AfterValidator, Field, StrictInt, StringConstraints, model_validator
from uuid6 import uuid7

from polystream.domain.events.payload import ClosedModel, P, Payload
from polystream.domain.events.registry import EVENT_TYPES
from polystream.domain.events.types import UtcDatetime, not_card_number

# Covariant: events are frozen facts, so an Envelope[UserRegistered] is an Envelope[Payload].
P_co = TypeVar("P_co", bound=Payload, covariant=True)

EVENT_TYPE_PATTERN: Final = r"^[a-z]+(?:\.[a-z_]+)+$"


class Envelope(ClosedModel, Generic[P_co]):
    """What travels on Kafka: routing and tracing metadata around one typed payload.

    ``Envelope[RatingSubmitted]`` is the concrete model of one event type. Build events with
    :func:`new_event` (the type is the payload's class's) and read them with :func:`decode`
    (the model is the one registered for the record's type); the bare ``Envelope`` cannot
    know which payload to expect.
    """

    event_id: UUID = Field(
        default_factory=uuid7,
        description="Unique id; UUIDv7, so ids sort by creation time. Idempotency key.",
    )
    type: Annotated[str, StringConstraints(max_length=64, pattern=EVENT_TYPE_PATTERN)] = Field(
        description="Event type, family.fact (e.g. rating.submitted)."
    )
    schema_version: StrictInt = Field(ge=1, le=1000, description="Version of the payload schema.")
    occurred_at: UtcDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the fact happened (UTC). The event-time guard for ordering.",
    )
    # Key, source and trace id are free-form enough to hold a card number typed with dashes,
    # and they reach every store's receipts and the audit index: refused like any id.
    key: Annotated[str, StringConstraints(min_length=1, max_length=128),
                   AfterValidator(not_card_number)] = Field(
        description="Kafka key: the id of the aggregate this event orders within."
    )
    source: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$"),
                      AfterValidator(not_card_number)] = (
        Field(description="Producer that emitted it (api, simulator, ...).")
    )
    trace_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"),
                        AfterValidator(not_card_number)] = (
        Field(description="Correlates the events caused by one request (W3C trace id).")
    )
    payload: P_co

    @model_validator(mode="after")
    def _agrees_with_registry(self) -> Self:
        # A mismatched key would put the event on the wrong partition and break per-aggregate
        # ordering silently, so it is a contract violation rather than a routing detail.
        spec = EVENT_TYPES.get(self.type)
        if spec is None:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.schema_version != spec.schema_version:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported for {self.type}"
            )
        if type(self.payload) is not spec.payload_model:
            raise ValueError(
                f"payload is a {type(self.payload).__name__}, "
                f"{self.type} needs a {spec.payload_model.__name__}"
            )
        if self.key != spec.key_of(self.payload):
            raise ValueError(f"key must equal payload.{spec.key_field}")
        return self


#: Any event: an envelope around the payload of whichever registered type. Functions that
#: handle one family say so with a precise type (``Envelope[UserRegistered]``, or a union of
#: payload classes); the rest take this and dispatch on the payload's class.
AnyEvent = Envelope[Payload]


def typed_event(event: AnyEvent, payload: P) -> Envelope[P]:
    """``event``, typed by the class of its payload as a ``match`` on it has just found::

        match event.payload:
            case TitleUpserted() as title:
                document = title_document(typed_event(event, title))  # Envelope[TitleUpserted]

    Checked: ``payload`` must be the event's own payload.
    """
    if event.payload is not payload:
        raise ValueError("payload is not the payload of this event")
    # Sound: the envelope is frozen and covariant in its payload, which is a P.
    return cast(Envelope[P], event)


#: The concrete envelope model of each event type, ``Envelope[payload model]``.
ENVELOPE_MODELS: Final[Mapping[str, type[AnyEvent]]] = MappingProxyType(
    {
        event_type: Envelope[spec.payload_model]  # type: ignore[name-defined]
        for event_type, spec in EVENT_TYPES.items()
    }
)


__all__ = ["ENVELOPE_MODELS", "EVENT_TYPE_PATTERN", "AnyEvent", "Envelope", "typed_event"]
