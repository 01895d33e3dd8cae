"""Publish the event contract as JSON Schema and AsyncAPI.

The pydantic models in :mod:`polystream.domain.events` are the source of truth. This module
renders them as files other tools and teams can read without Python:

* ``schemas/<type>.json``: one JSON Schema (draft 2020-12) per event type, the envelope with
  that type's payload, carrying the ``x-sensitive`` / ``x-personal`` markers;
* ``asyncapi.json``: an AsyncAPI 3.0 document: channels are the Kafka topics (key, partitions),
  messages are the event types, operations are who sends and who receives what.

Output is deterministic (sorted keys, fixed order, two-space indent, trailing newline) so the
committed copy in ``docs/schemas`` can be checked for drift with :func:`check`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from polystream import __version__
from polystream.bus.topology import (
    CONSUMER_GROUPS,
    TOPIC_PARTITIONS,
    DeadLetterHeader,
    Topic,
    topic_of,
)
from polystream.domain.events import ENVELOPE_MODELS, EVENT_TYPES, MAX_EVENT_BYTES, Receipt, Sink

__all__ = [
    "ASYNCAPI_FILE",
    "SCHEMAS_DIR",
    "SCHEMA_DIALECT",
    "asyncapi_document",
    "check",
    "event_schema",
    "event_schema_id",
    "export",
    "render",
    "rendered_files",
]

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS_DIR: Final = "schemas"
ASYNCAPI_FILE: Final = "asyncapi.json"
# AsyncAPI 3.0.0's own JSON Schema accepts Kafka bindings up to 0.4.0 (later versions need
# a later AsyncAPI), so that is what the document declares.
_KAFKA_BINDING: Final = "0.4.0"
_ENVELOPE_FIELDS: Final = (
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "key",
    "source",
    "trace_id",
    "payload",
)


def event_schema_id(event_type: str) -> str:
    """The ``$id`` of an event type's schema: a URN, because the schemas are not hosted."""
    return f"urn:polystream:event:{event_type}:v{EVENT_TYPES[event_type].schema_version}"


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type as it appears on the wire."""
    spec = EVENT_TYPES[event_type]
    schema = ENVELOPE_MODELS[event_type].model_json_schema()
    properties: dict[str, Any] = schema["properties"]
    # The generic envelope says "some type, some version"; this schema is for one of each.
    properties["type"] = {"const": spec.type, "title": "Type", "type": "string"}
    properties["schema_version"] = {
        "const": spec.schema_version,
        "title": "Schema Version",
        "type": "integer",
    }
    properties["key"]["description"] = f"Kafka key; always equal to payload.{spec.key_field}."
    # event_id and occurred_at have defaults in Python (filled by new_event) but are always
    # present on the wire, and decode() refuses events without them.
    schema["required"] = list(_ENVELOPE_FIELDS)
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = event_schema_id(event_type)
    schema["title"] = f"{spec.type} v{spec.schema_version}"
    schema["description"] = _docstring(spec.payload_model.__doc__)
    schema["x-topic"] = topic_of(event_type).value
    schema["x-key"] = f"payload.{spec.key_field}"
    schema["x-consumers"] = [sink.value for sink in spec.consumers]
    schema["x-max-bytes"] = MAX_EVENT_BYTES
    return schema


def _docstring(doc: str | None) -> str:
    """A docstring as one paragraph per blank-line-separated block, without indentation."""
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    paragraphs = " ".join(line if line else "\n\n" for line in lines).split("\n\n")
    return "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())


# --- AsyncAPI --------------------------------------------------------------------------

_TOPIC_DESCRIPTIONS: Final[Mapping[Topic, str]] = {
    Topic.USERS: "Accounts and their preferences.",
    Topic.SUBSCRIPTIONS: (
        "Subscriptions and payments. Keyed by user_id so that a user's billing history "
        "(start, renewals, payments, refunds, cancellation) is consumed in order."
    ),
    Topic.SESSIONS: "Login sessions, published by the API after it created them in Redis.",
    Topic.PLAYBACK: "Viewing heartbeats; the busiest topic.",
    Topic.RATINGS: "Ratings and reviews.",
    Topic.CATALOG: (
        "Movies, series, relations between titles and display images. Keyed by title_id "
        "(relations by from_title_id, so a title's edges share its partition)."
    ),
    Topic.FLAGS: "Feature flags and runtime variables.",
    Topic.DEADLETTER: (
        "Records a sink could not process: the original bytes, unchanged, with the reason "
        "and origin in headers. Keyed like the original record."
    ),
    Topic.RECEIPTS: "Each sink's outcome per event (stored, duplicate, stale, rejected, ...).",
}


def _channel_id(topic: Topic) -> str:
    return topic.value.removeprefix("polystream.")


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                prefix + value.removeprefix("#/$defs/")
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    return node


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Move ``$defs`` into ``components.schemas`` (shared between messages)."""
    prefix = "#/components/schemas/"
    for name, definition in schema.pop("$defs", {}).items():
        rewritten = _rewrite_refs(definition, prefix)
        existing = components.setdefault(name, rewritten)
        if existing != rewritten:
            # Two different models with one class name would silently share a schema.
            raise ValueError(f"two different schemas are both named {name!r}")
    return dict(_rewrite_refs(schema, prefix))


def _message_ref(topic: Topic, message: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{_channel_id(topic)}/messages/{message}"}


def _group_binding(sink: Sink) -> dict[str, Any]:
    return {
        "kafka": {
            "groupId": {"type": "string", "enum": [CONSUMER_GROUPS[sink]]},
            "bindingVersion": _KAFKA_BINDING,
        }
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of every topic, event type, producer and consumer."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, spec in EVENT_TYPES.items():
        schema = event_schema(event_type)
        # $id would rebase the component refs; $schema is implied by the document.
        del schema["$id"], schema["$schema"]
        schemas[event_type] = _hoist(schema, schemas)
        messages[event_type] = {
            "name": event_type,
            "title": schema["title"],
            "summary": spec.description,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{event_type}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": f"payload.{spec.key_field}"},
                    "bindingVersion": _KAFKA_BINDING,
                }
            },
            "x-consumers": [sink.value for sink in spec.consumers],
        }

    receipt_schema = Receipt.model_json_schema()
    schemas["receipt"] = _hoist(receipt_schema, schemas)
    messages["receipt"] = {
        "name": "receipt",
        "title": "Sink receipt",
        "summary": _docstring(Receipt.__doc__),
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/receipt"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "event_id"},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }
    messages["dead-letter"] = {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A record a sink gave up on, with the reason in headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": [
                header.value
                for header in DeadLetterHeader
                if header is not DeadLetterHeader.EVENT_TYPE
            ],
            "properties": {header.value: {"type": "string"} for header in DeadLetterHeader},
        },
        "payload": {"description": "The original record value, byte for byte."},
    }

    channels: dict[str, Any] = {}
    for topic in Topic:
        if topic is Topic.RECEIPTS:
            names = ["receipt"]
        elif topic is Topic.DEADLETTER:
            names = ["dead-letter"]
        else:
            names = [t for t, spec in EVENT_TYPES.items() if topic_of(t) is topic]
        keys = sorted({f"payload.{EVENT_TYPES[n].key_field}" for n in names if n in EVENT_TYPES})
        description = _TOPIC_DESCRIPTIONS[topic]
        if keys:
            description += f" Key: {', '.join(keys)}."
        channels[_channel_id(topic)] = {
            "address": topic.value,
            "title": topic.value,
            "description": description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {
                "kafka": {
                    "topic": topic.value,
                    "partitions": TOPIC_PARTITIONS[topic],
                    "topicConfiguration": {"max.message.bytes": MAX_EVENT_BYTES},
                    "bindingVersion": _KAFKA_BINDING,
                }
            },
        }

    operations: dict[str, Any] = {}
    for topic in Topic:
        channel = {"$ref": f"#/channels/{_channel_id(topic)}"}
        if topic in (Topic.RECEIPTS, Topic.DEADLETTER):
            message = "receipt" if topic is Topic.RECEIPTS else "dead-letter"
            operations[f"{_channel_id(topic)}.send"] = {
                "action": "send",
                "channel": channel,
                "summary": f"The store sinks ({', '.join(_STORE_SINKS)}) publish {message}s.",
                "messages": [_message_ref(topic, message)],
            }
            operations[f"audit.receive.{_channel_id(topic)}"] = {
                "action": "receive",
                "channel": channel,
                "summary": f"The audit indexes every {message}.",
                "messages": [_message_ref(topic, message)],
                "bindings": _group_binding(Sink.AUDIT),
            }
            continue
        names = [t for t, spec in EVENT_TYPES.items() if topic_of(t) is topic]
        operations[f"{_channel_id(topic)}.send"] = {
            "action": "send",
            "channel": channel,
            "summary": "Producers (the API and the simulator) publish these events.",
            "messages": [_message_ref(topic, name) for name in names],
        }
        for sink in Sink:
            consumed = [name for name in names if sink in EVENT_TYPES[name].consumers]
            if consumed:
                operations[f"{sink.value}.receive.{_channel_id(topic)}"] = {
                    "action": "receive",
                    "channel": channel,
                    "summary": (
                        f"The {sink.value} sink (consumer group {CONSUMER_GROUPS[sink]}) "
                        "consumes these events; other types on the topic are skipped."
                    ),
                    "messages": [_message_ref(topic, name) for name in consumed],
                    "bindings": _group_binding(sink),
                }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "polystream events",
            "version": __version__,
            "description": (
                "Every change in polystream is an event on Kafka. Each store has its own "
                "consumer group (sink); the audit consumes everything. Events are JSON "
                "envelopes (event_id, type, schema_version, occurred_at, key, source, "
                "trace_id, payload). Fields marked x-sensitive are never logged or audited; "
                "fields marked x-personal are pseudonymised in the audit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker started by `polystream stack up`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


_STORE_SINKS: Final = tuple(sink.value for sink in Sink if sink is not Sink.AUDIT)


# --- files -----------------------------------------------------------------------------


def render(document: Mapping[str, Any]) -> str:
    """Canonical text of a JSON document: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """Every exported file, by path relative to the output directory (``/`` separated)."""
    files = {
        f"{SCHEMAS_DIR}/{event_type}.json": render(event_schema(event_type))
        for event_type in sorted(EVENT_TYPES)
    }
    files[ASYNCAPI_FILE] = render(asyncapi_document())
    return files


def _stale_schema_files(out_dir: Path, expected: Mapping[str, str]) -> list[str]:
    directory = out_dir / SCHEMAS_DIR
    if not directory.is_dir():
        return []
    return sorted(
        f"{SCHEMAS_DIR}/{path.name}"
        for path in directory.glob("*.json")
        if f"{SCHEMAS_DIR}/{path.name}" not in expected
    )


def export(out_dir: Path) -> list[Path]:
    """Write every file under ``out_dir`` (creating it) and return the paths written.

    Schemas of event types that no longer exist are deleted, so the directory always
    mirrors the code. Files are written only when their content changed.
    """
    files = rendered_files()
    for stale in _stale_schema_files(out_dir, files):
        (out_dir / stale).unlink()
    written: list[Path] = []
    for relative, text in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def check(out_dir: Path) -> list[str]:
    """Differences between ``out_dir`` and what :func:`export` would write; empty if none.

    Each entry names one file and says how it differs (missing, unexpected, or the first
    lines of a unified diff), ready to print.
    """
    problems: list[str] = []
    files = rendered_files()
    for relative, expected in files.items():
        path = out_dir / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
            continue
        actual = path.read_text(encoding="utf-8")
        if actual != expected:
            diff = list(
                difflib.unified_diff(
                    actual.splitlines(),
                    expected.splitlines(),
                    fromfile=f"{relative} (committed)",
                    tofile=f"{relative} (from code)",
                    lineterm="",
                    n=1,
                )
            )
            shown = "\n".join(diff[:12]) + ("\n..." if len(diff) > 12 else "")
            problems.append(f"{relative}: differs from the code\n{shown}")
    problems.extend(
        f"{stale}: unexpected (no such event type)" for stale in _stale_schema_files(out_dir, files)
    )
    return problems
