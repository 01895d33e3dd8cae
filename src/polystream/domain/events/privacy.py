"""Redaction and pseudonymisation: what of an event may reach logs and the audit trail.

Secrets (fields marked ``x-sensitive`` in the schema, and keys that always name secrets) are
replaced by ``"***"``; personal fields (``x-personal``) by a keyed hash in the audit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, Final

from polystream.domain.events.cards import CARD_KEYS, normalise_key
from polystream.domain.events.envelope import ENVELOPE_MODELS, AnyEvent, Envelope
from polystream.domain.events.registry import EVENT_TYPES, EventSpec

REDACTED: Final = "***"

# Applied on top of the schema markers, to anything (unknown types, dead letters, request
# bodies): names that always hold secrets. Normalised like CARD_KEYS.
_SECRET_KEYS: Final = CARD_KEYS | frozenset(
    {
        "password",
        "passwordhash",
        "newpassword",
        "token",
        "cardtoken",
        "accesstoken",
        "refreshtoken",
        "sessiontoken",
        "secret",
        "clientsecret",
        "apikey",
        "authorization",
    }
)


@cache
def _marked_paths(event_type: str, marker: str) -> tuple[tuple[str, ...], ...]:
    schema = ENVELOPE_MODELS[event_type].model_json_schema()
    definitions: dict[str, Any] = schema.get("$defs", {})
    found: list[tuple[str, ...]] = []

    def walk(node: Mapping[str, Any], path: tuple[str, ...], seen: frozenset[str]) -> None:
        if node.get(marker):
            found.append(path)
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:  # recursive schemas would loop forever
                walk(definitions[name], path, seen | {name})
        for option in node.get("anyOf", ()):
            walk(option, path, seen)
        items = node.get("items")
        if isinstance(items, Mapping):
            walk(items, (*path, "*"), seen)
        for name, child in node.get("properties", {}).items():
            walk(child, (*path, name), seen)

    walk(schema, (), frozenset())
    return tuple(dict.fromkeys(found))


def sensitive_paths(event_type: str) -> tuple[tuple[str, ...], ...]:
    """Paths (``("payload", "password_hash")``; ``"*"`` = every list item) marked
    ``x-sensitive`` in the schema of ``event_type``."""
    return _marked_paths(event_type, "x-sensitive")


def personal_paths(event_type: str) -> tuple[tuple[str, ...], ...]:
    """Paths marked ``x-personal`` in the schema of ``event_type``."""
    return _marked_paths(event_type, "x-personal")


def apply_at(data: Any, path: tuple[str, ...], change: Callable[[Any], Any]) -> None:
    """Replace the non-null value(s) at ``path`` (as :func:`personal_paths` gives them) of the
    JSON-shaped ``data`` with ``change(value)``, in place."""
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for index, item in enumerate(data):
                if rest:
                    apply_at(item, rest, change)
                elif item is not None:
                    data[index] = change(item)
        return
    if not isinstance(data, dict) or head not in data:
        return
    if rest:
        apply_at(data[head], rest, change)
    elif data[head] is not None:
        data[head] = change(data[head])


def _iter_dicts(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _as_json_data(
    event: AnyEvent | Mapping[str, Any],
) -> tuple[dict[str, Any], EventSpec | None]:
    if isinstance(event, Envelope):
        return event.model_dump(mode="json"), EVENT_TYPES.get(event.type)
    # A fresh, JSON-shaped copy: the caller's object is never modified.
    data = json.loads(json.dumps(event, default=str))
    event_type = data.get("type") if isinstance(data, dict) else None
    spec = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    return data, spec


def redact(event: AnyEvent | Mapping[str, Any], *, personal: bool = False) -> dict[str, Any]:
    """A JSON-shaped copy of an event with every secret replaced by ``"***"``.

    Secrets are the fields marked ``x-sensitive`` in the event's schema, plus, anywhere and
    for any input (unknown types, dead letters, request bodies), keys that always name
    secrets (password, token, cvv, ...). Use it before logging or auditing anything.
    ``personal``: the ``x-personal`` fields too, for logs: a log line cannot be erased when
    the person is.
    """
    data, spec = _as_json_data(event)
    if spec is not None:
        paths = sensitive_paths(spec.type)
        if personal:
            paths = paths + personal_paths(spec.type)
        for path in paths:
            apply_at(data, path, lambda _value: REDACTED)
    for mapping in _iter_dicts(data):
        for key, value in mapping.items():
            if value is not None and normalise_key(key) in _SECRET_KEYS:
                mapping[key] = REDACTED
    return data


def pseudonymise(event: AnyEvent | Mapping[str, Any], *, secret: bytes) -> dict[str, Any]:
    """:func:`redact`, then personal fields replaced by a keyed hash (``"hmac:<hex>"``).

    The same person gets the same pseudonym under the same ``secret``, so the audit can
    still answer "what did this account do" without storing who they are. Destroying the
    secret anonymises the whole trail at once.
    """
    data = redact(event)
    spec = EVENT_TYPES.get(data.get("type", "")) if isinstance(data.get("type"), str) else None
    if spec is not None:

        def pseudonym(value: Any) -> str:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            digest = hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]
            return f"hmac:{digest}"

        for path in personal_paths(spec.type):
            apply_at(data, path, pseudonym)
    return data


__all__ = ["REDACTED", "apply_at", "personal_paths", "pseudonymise", "redact", "sensitive_paths"]
