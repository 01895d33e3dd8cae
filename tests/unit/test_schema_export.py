"""The exported JSON Schemas and AsyncAPI document: drift, validity, structure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from polystream import schema_export
from polystream.bus.topology import CONSUMER_GROUPS, TOPIC_PARTITIONS, Topic, topic_of
from polystream.domain import examples
from polystream.domain.events import (
    EVENT_TYPES,
    Sink,
    encode,
    event_types_for,
    personal_paths,
    sensitive_paths,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
ALL_TYPES = sorted(EVENT_TYPES)


def validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((DOCS / "schemas" / f"{event_type}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- drift --------------------------------------------------------------------------------


def test_committed_files_match_the_code(tmp_path: Path) -> None:
    """Fails when events.py changed without `polystream schema export` being re-run."""
    schema_export.export(tmp_path)
    exported = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    for relative in exported:
        assert (DOCS / relative).read_text(encoding="utf-8") == (tmp_path / relative).read_text(
            encoding="utf-8"
        ), f"docs/{relative} is stale: run `polystream schema export`"
    assert schema_export.check(DOCS) == []


def test_export_is_deterministic(tmp_path: Path) -> None:
    first = schema_export.rendered_files()
    assert schema_export.rendered_files() == first
    schema_export.export(tmp_path)
    for relative, text in first.items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert schema_export.render(json.loads(text)) == text  # sorted keys, canonical


def test_export_writes_one_schema_per_type(tmp_path: Path) -> None:
    schema_export.export(tmp_path)
    names = sorted(p.stem for p in (tmp_path / "schemas").glob("*.json"))
    assert names == ALL_TYPES
    assert (tmp_path / "asyncapi.json").is_file()


def test_check_reports_drift(tmp_path: Path) -> None:
    schema_export.export(tmp_path)
    assert schema_export.check(tmp_path) == []

    changed = tmp_path / "schemas" / "rating.submitted.json"
    changed.write_text(changed.read_text().replace('"maximum": 5', '"maximum": 10'))
    (tmp_path / "schemas" / "rating.retracted.json").unlink()
    (tmp_path / "schemas" / "rating.deleted.json").write_text("{}\n")

    problems = schema_export.check(tmp_path)
    assert len(problems) == 3
    assert problems[0].startswith("schemas/rating.retracted.json: missing")
    assert problems[1].startswith("schemas/rating.submitted.json: differs from the code")
    assert '-          "maximum": 10,' in problems[1]
    assert '+          "maximum": 5,' in problems[1]
    assert problems[2] == "schemas/rating.deleted.json: unexpected (no such event type)"

    schema_export.export(tmp_path)
    assert schema_export.check(tmp_path) == []
    assert not (tmp_path / "schemas" / "rating.deleted.json").exists()


def test_check_of_an_empty_directory(tmp_path: Path) -> None:
    problems = schema_export.check(tmp_path)
    assert len(problems) == len(EVENT_TYPES) + 1
    assert all(problem.endswith(": missing") for problem in problems)


# --- the JSON Schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_example_validates_against_its_exported_schema(event_type: str) -> None:
    event = json.loads(encode(examples.example_event(event_type)))
    errors = [error.message for error in validator(event_type).iter_errors(event)]
    assert errors == []


def test_movie_validates_against_the_title_schema() -> None:
    from polystream.domain.events import new_event

    event = json.loads(
        encode(new_event(examples.movie_title(), source="t"))
    )
    assert list(validator("catalog.title_upserted").iter_errors(event)) == []


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("rating.submitted", ("payload", "stars"), 6),
        ("rating.submitted", ("payload", "stars"), "4"),
        ("rating.submitted", ("payload", "extra"), 1),
        ("rating.submitted", ("type",), "rating.retracted"),
        ("rating.submitted", ("schema_version",), 3),
        ("payment.succeeded", ("payload", "card_last4"), "42"),
        ("payment.succeeded", ("payload", "amount_cents"), -5),
        ("subscription.started", ("payload", "plan"), "platinum"),
        ("user.registered", ("payload", "password_hash"), "plain"),
        ("catalog.title_upserted", ("payload", "kind"), "movie"),  # a series' fields
        ("catalog.relation_added", ("payload", "weight"), 1.5),
    ],
)
def test_exported_schemas_reject_invalid_events(
    event_type: str, path: tuple[str, ...], value: object
) -> None:
    event: dict[str, Any] = json.loads(encode(examples.example_event(event_type)))
    node = event
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert list(validator(event_type).iter_errors(event))


def test_missing_envelope_fields_are_invalid() -> None:
    event = json.loads(encode(examples.example_event("rating.submitted")))
    del event["event_id"]
    assert list(validator("rating.submitted").iter_errors(event))


def test_schema_metadata() -> None:
    for event_type, spec in EVENT_TYPES.items():
        schema = schema_export.event_schema(event_type)
        assert schema["$id"] == f"urn:polystream:event:{event_type}:v{spec.schema_version}"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == f"{event_type} v{spec.schema_version}"
        assert schema["properties"]["type"]["const"] == event_type
        assert schema["properties"]["schema_version"]["const"] == spec.schema_version
        assert schema["x-topic"] == topic_of(spec.type).value
        assert schema["x-key"] == f"payload.{spec.key_field}"
        assert schema["x-consumers"] == [sink.value for sink in spec.consumers]
        assert schema["description"]


def test_markers_are_exported() -> None:
    registered = json.loads((DOCS / "schemas" / "user.registered.json").read_text())
    fields = registered["$defs"]["UserRegistered"]["properties"]
    assert fields["password_hash"]["x-sensitive"] is True
    assert fields["email"]["x-personal"] is True
    assert fields["display_name"]["x-personal"] is True
    payment = json.loads((DOCS / "schemas" / "payment.succeeded.json").read_text())
    assert payment["$defs"]["PaymentSucceeded"]["properties"]["card_token"]["x-sensitive"] is True
    login = json.loads((DOCS / "schemas" / "session.login_started.json").read_text())
    assert login["$defs"]["SessionLoginStarted"]["properties"]["ip_address"]["x-personal"] is True


# --- AsyncAPI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_refs_all_resolve(asyncapi: dict[str, Any]) -> None:
    refs = _refs(asyncapi)
    assert refs
    for ref in set(refs):
        _resolve(asyncapi, ref)


def test_asyncapi_shape(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(asyncapi["info"])
    component_name = re.compile(r"^[a-zA-Z0-9.\-_]+$")
    for section in ("schemas", "messages"):
        assert all(component_name.match(name) for name in asyncapi["components"][section])
    assert all(component_name.match(name) for name in asyncapi["operations"])
    for operation in asyncapi["operations"].values():
        assert operation["action"] in ("send", "receive")
        _resolve(asyncapi, operation["channel"]["$ref"])
        for message in operation["messages"]:
            # Operation messages must be messages of the operation's channel.
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")


def test_asyncapi_channels_are_the_topics(asyncapi: dict[str, Any]) -> None:
    channels = asyncapi["channels"]
    assert {channel["address"] for channel in channels.values()} == {t.value for t in Topic}
    for channel in channels.values():
        topic = Topic(channel["address"])
        assert channel["bindings"]["kafka"]["partitions"] == TOPIC_PARTITIONS[topic]
        expected = [t for t, spec in EVENT_TYPES.items() if topic_of(t) is topic]
        if expected:
            assert sorted(channel["messages"]) == sorted(expected)
            for event_type in expected:
                assert f"payload.{EVENT_TYPES[event_type].key_field}" in channel["description"]


def test_asyncapi_messages_and_keys(asyncapi: dict[str, Any]) -> None:
    messages = asyncapi["components"]["messages"]
    for event_type, spec in EVENT_TYPES.items():
        message = messages[event_type]
        key = message["bindings"]["kafka"]["key"]
        assert key["description"] == f"payload.{spec.key_field}"
        payload = _resolve(asyncapi, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == event_type


def test_asyncapi_operations_per_sink(asyncapi: dict[str, Any]) -> None:
    operations = asyncapi["operations"]
    for sink in Sink:
        received: set[str] = set()
        for name, operation in operations.items():
            if operation["action"] == "receive" and name.startswith(f"{sink.value}.receive."):
                group = operation["bindings"]["kafka"]["groupId"]["enum"]
                assert group == [CONSUMER_GROUPS[sink]]
                received |= {m["$ref"].rsplit("/", 1)[1] for m in operation["messages"]}
        expected = set(event_types_for(sink))
        if sink is Sink.AUDIT:
            expected |= {"receipt", "dead-letter"}
        assert received == expected, sink
    sent = {
        m["$ref"].rsplit("/", 1)[1]
        for operation in operations.values()
        if operation["action"] == "send"
        for m in operation["messages"]
    }
    assert set(EVENT_TYPES) <= sent


def test_asyncapi_embedded_schemas_validate_examples(asyncapi: dict[str, Any]) -> None:
    """The hoisted component schemas still describe the same events."""
    for event in examples.example_events():
        document = {**asyncapi, "$ref": f"#/components/schemas/{event.type}"}
        check = Draft202012Validator(document)
        assert list(check.iter_errors(json.loads(encode(event)))) == []


# --- docs/events.md -----------------------------------------------------------------------


def test_event_catalog_page_matches_the_registry() -> None:
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    for event_type, spec in EVENT_TYPES.items():
        consumers = ", ".join(sink.value for sink in spec.consumers)
        row = (
            f"| `{event_type}` | `{topic_of(event_type).value}` | `payload.{spec.key_field}` "
            f"| {spec.schema_version} | {consumers} |"
        )
        assert row in page, f"docs/events.md: summary row of {event_type} is missing or stale"
        sensitive = ", ".join(".".join(path[1:]) for path in sensitive_paths(event_type)) or "—"
        personal = ", ".join(".".join(path[1:]) for path in personal_paths(event_type)) or "—"
        assert f"{row} {sensitive} | {personal} |" in page, event_type
        assert f"**`{event_type}`**" in page, f"docs/events.md does not describe {event_type}"
    for topic in Topic:
        assert f"| `{topic.value}` | {TOPIC_PARTITIONS[topic]} |" in page
