"""Upcasters: how a consumer reads the previous ``schema_version`` of an event type.

Consumers are deployed before producers (docs/events.md), and topics keep older events for
their retention and for every replay; so each consumer reads the current version of each type
and the one before it. An upcaster turns the JSON payload of version N-1 into the payload of
version N; the result is then validated by the current model like any other event, so an
upcaster cannot smuggle in anything the current contract refuses. Producers always write the
current version.

Rules for whoever bumps a version:

* add the upcaster from the previous version here, keyed by (type, previous version);
* keep the previous version's JSON Schema and sample events frozen in ``tests/compat/`` (the
  compatibility check in ``make test`` decodes them with the current consumer);
* an upcaster is pure and total on valid old payloads: no clock, no I/O, no randomness, so a
  replay upcasts the same way every time.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

#: The JSON form of a payload of one version -> the JSON form of the next.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_LINE_BREAKS: Final = frozenset("\n\r\t")


def _without_controls(text: str, *, multiline: bool) -> str:
    if text.isprintable():
        return text
    out: list[str] = []
    for char in text:
        if unicodedata.category(char) not in {"Cc", "Cs"}:
            out.append(char)
        elif char in _LINE_BREAKS:
            # Kept where the field is multi-line; elsewhere the words stay apart.
            out.append(char if multiline else " ")
    return "".join(out)


def _clean(value: Any, multiline: frozenset[str], key: str | None = None) -> Any:
    if isinstance(value, str):
        return _without_controls(value, multiline=key in multiline)
    if isinstance(value, list):
        return [_clean(item, multiline, key) for item in value]
    if isinstance(value, dict):
        return {
            (_without_controls(k, multiline=False) if isinstance(k, str) else k):
                _clean(v, multiline, k if isinstance(k, str) else None)
            for k, v in value.items()
        }
    return value


def free_text_without_controls(multiline: frozenset[str] = frozenset()) -> Upcaster:
    """v1 -> v2 of the types with free text: v2 refuses control characters (NUL reached
    Redis but dead-lettered in PostgreSQL, so the stores disagreed). Old events lose them
    instead of being dead-lettered: line breaks and tabs stay in the ``multiline`` fields and
    become spaces elsewhere; every other control character is dropped."""

    def upcast(payload: dict[str, Any]) -> dict[str, Any]:
        cleaned = _clean(payload, multiline)
        assert isinstance(cleaned, dict)
        return cleaned

    return upcast


#: (event type, the version it reads) -> upcaster to the next version.
UPCASTERS: Final[Mapping[tuple[str, int], Upcaster]] = MappingProxyType({
    ("user.registered", 1): free_text_without_controls(),
    ("user.profile_updated", 1): free_text_without_controls(),
    ("session.login_started", 1): free_text_without_controls(),
    ("rating.submitted", 1): free_text_without_controls(frozenset({"review"})),
    ("catalog.title_upserted", 1): free_text_without_controls(frozenset({"synopsis"})),
    ("flag.set", 1): free_text_without_controls(),
})

#: The current version of each type that is past 1 (the registry reads it from here, so the
#: version and its upcaster are declared side by side).
CURRENT_VERSIONS: Final[Mapping[str, int]] = MappingProxyType({
    event_type: version + 1 for event_type, version in UPCASTERS
})


def upcaster_for(event_type: str, version: int, current: int) -> Upcaster | None:
    """The upcaster that makes ``version`` readable as ``current``: only the previous
    version has one; None otherwise."""
    if version != current - 1:
        return None
    return UPCASTERS.get((event_type, version))


__all__ = ["CURRENT_VERSIONS", "UPCASTERS", "Upcaster", "free_text_without_controls",
           "upcaster_for"]
