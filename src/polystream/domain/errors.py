"""Errors raised by the domain layer.

Every way an event can be refused has its own class so that a consumer can route it (the
dead-letter topic, a receipt, an HTTP status) without parsing messages. Each class carries a
stable ``code`` for machine use (dead-letter headers, metrics labels) and a human ``reason``.
Reasons never contain field *values*: a refused event may hold a password hash or a card
token, and reasons end up in logs and Kafka headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "DomainError",
    "EventValidationError",
    "FieldError",
    "InvalidEvent",
    "MalformedEvent",
    "OversizedEvent",
    "UnknownEventType",
    "UnsupportedSchemaVersion",
]


class DomainError(Exception):
    """Base class of the errors the domain layer raises on purpose."""


class InvalidEvent(DomainError):
    """An event (or a would-be event) that does not satisfy the contract.

    ``event_type`` is filled in when the type could be read, so a dead-letter record can
    still say what it was meant to be.
    """

    code: ClassVar[str] = "invalid"

    def __init__(self, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are lost by the default pickling of exceptions, and these
        # errors cross process boundaries (worker pools).
        return (_rebuild, (type(self), self.reason, self.event_type))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, event_type={self.event_type!r})"


def _rebuild(cls: type[InvalidEvent], reason: str, event_type: str | None) -> InvalidEvent:
    return cls(reason, event_type=event_type)


class MalformedEvent(InvalidEvent):
    """Not JSON, not UTF-8, or not a JSON object."""

    code = "malformed"


class UnknownEventType(InvalidEvent):
    """A ``type`` this build does not know (newer producer, or a typo)."""

    code = "unknown_type"


class UnsupportedSchemaVersion(InvalidEvent):
    """A known ``type`` with a ``schema_version`` this build cannot read."""

    code = "unsupported_version"


class OversizedEvent(InvalidEvent):
    """An encoded event larger than the contract allows."""

    code = "oversized"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One precise complaint: where (``payload.stars``), what, and pydantic's error kind."""

    path: str
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.kind}]"


class EventValidationError(InvalidEvent):
    """Well-formed JSON of a known type and version whose fields break the contract."""

    code = "validation"

    def __init__(
        self,
        reason: str,
        *,
        event_type: str | None = None,
        errors: tuple[FieldError, ...] = (),
    ) -> None:
        super().__init__(reason, event_type=event_type)
        self.errors = errors

    @classmethod
    def from_errors(
        cls, errors: tuple[FieldError, ...], *, event_type: str | None = None
    ) -> EventValidationError:
        return cls("; ".join(map(str, errors)), event_type=event_type, errors=errors)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_validation, (self.reason, self.event_type, self.errors))


def _rebuild_validation(
    reason: str, event_type: str | None, errors: tuple[FieldError, ...]
) -> EventValidationError:
    return EventValidationError(reason, event_type=event_type, errors=errors)
