"""The compatibility check: the current consumer reads the previous contract.

``previous/schemas`` is a frozen copy of the JSON Schemas of the previous contract release and
``previous/samples.jsonl`` events written by its producers (examples of every type, and v1
free text holding control characters, which v1 accepted). Each sample must be valid under its
frozen schema (so the samples are honest), and the current ``decode`` must read it: upcast to
the current version when it is the previous one, and valid under the current schema.

This fails when a change to the contract breaks a consumer of the previous version: a payload
change without a version bump, a bump without an upcaster, a bump of two versions at once.
Refresh the snapshot when a contract is released (docs/events.md, "Changing the contract").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from polystream.domain.errors import UnsupportedSchemaVersion
from polystream.domain.events import EVENT_TYPES, decode, decode_dict, encode
from polystream.domain.events.upcasting import UPCASTERS
from polystream.domain.examples import example_event

HERE = Path(__file__).resolve().parent / "previous"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
SAMPLES = [
    line for line in (HERE / "samples.jsonl").read_bytes().splitlines() if line.strip()
]


def validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def frozen_version(event_type: str) -> int:
    schema = json.loads((HERE / "schemas" / f"{event_type}.json").read_text(encoding="utf-8"))
    return int(schema["properties"]["schema_version"]["const"])


def sample_id(raw: bytes) -> str:
    data = json.loads(raw)
    return f"{data['type']}-v{data['schema_version']}-{data['event_id'][-6:]}"


def test_every_type_of_the_previous_contract_has_samples() -> None:
    sampled = {json.loads(raw)["type"] for raw in SAMPLES}
    frozen = {path.stem for path in (HERE / "schemas").glob("*.json")}
    assert frozen == sampled


@pytest.mark.parametrize("event_type", sorted(p.stem for p in (HERE / "schemas").glob("*.json")))
def test_each_type_is_at_its_previous_version_or_the_next(event_type: str) -> None:
    # A type may not disappear (old events would become unknown) nor skip a version.
    assert event_type in EVENT_TYPES, f"{event_type} was removed from the contract"
    current = EVENT_TYPES[event_type].schema_version
    previous = frozen_version(event_type)
    assert current in {previous, previous + 1}
    if current == previous + 1:
        assert (event_type, previous) in UPCASTERS, f"{event_type} v{current} has no upcaster"


@pytest.mark.parametrize("raw", SAMPLES, ids=sample_id)
def test_samples_are_valid_under_the_frozen_schemas(raw: bytes) -> None:
    data = json.loads(raw)
    errors = list(validator(HERE / "schemas" / f"{data['type']}.json").iter_errors(data))
    assert errors == []


@pytest.mark.parametrize("raw", SAMPLES, ids=sample_id)
def test_the_current_consumer_reads_every_previous_event(raw: bytes) -> None:
    data: dict[str, Any] = json.loads(raw)
    event = decode(raw)
    spec = EVENT_TYPES[data["type"]]
    assert event.schema_version == spec.schema_version
    assert str(event.event_id) == data["event_id"] and event.key == data["key"]
    assert decode_dict(data) == event
    # What the consumer now holds is a valid current event, as a current producer writes it.
    current = json.loads(encode(event))
    assert list(validator(DOCS / f"{data['type']}.json").iter_errors(current)) == []


def test_upcasting_removes_control_characters_and_keeps_the_rest() -> None:
    by_type = {}
    for raw in SAMPLES:
        data = json.loads(raw)
        if "\\u0000" in raw.decode():  # the v1 samples holding NUL
            by_type[data["type"]] = decode(raw)
    registered = by_type["user.registered"].payload
    assert registered.display_name == "Ana Silva "  # type: ignore[attr-defined]
    rating = by_type["rating.submitted"].payload
    assert rating.review == "Great film.\nReally."  # type: ignore[attr-defined]
    title = by_type["catalog.title_upserted"].payload
    assert title.title == "QuietHarbour"  # type: ignore[attr-defined]
    assert title.synopsis == "Two sisters.\n\tA sea."  # type: ignore[attr-defined]


def test_versions_older_than_the_previous_are_refused() -> None:
    raw = next(r for r in SAMPLES if json.loads(r)["type"] == "user.registered")
    data = json.loads(raw) | {"schema_version": 0}
    with pytest.raises(UnsupportedSchemaVersion, match="reads 1 and 2"):
        decode(json.dumps(data).encode())


def test_producers_write_the_current_version() -> None:
    for event_type, spec in EVENT_TYPES.items():
        assert example_event(event_type).schema_version == spec.schema_version
        assert json.loads(encode(example_event(event_type)))["schema_version"] == \
            spec.schema_version
