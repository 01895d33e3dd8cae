"""The catalog rules on their own: `plan_batch` folds a batch over a given guard state, with no
store at all. The contract tests hold both stores to the same rules end to end; these pin the
decisions themselves, including the states a store only reaches by a race."""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import timedelta
from typing import Any

import pytest

from polystream.domain.catalog import (
    CHUNK_SIZE,
    CorruptUpload,
    assembled_intact,
    asset_file_document,
    asset_info_from_document,
    chunked,
    to_micros,
)
from polystream.domain.catalog_rules import (
    CatalogState,
    RelationGuard,
    TitleGuard,
    key_of,
    plan_batch,
)
from polystream.domain.events import Envelope, ReceiptStatus, new_event
from polystream.domain.examples import (
    EXAMPLE_TIME,
    example_event,
    image_asset,
    movie_title,
)

S = ReceiptStatus
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def upsert(title_id: str, version: int) -> Envelope[Any]:
    return new_event(movie_title(title_id=title_id, version=version), source="unit-test")


def statuses(events: list[Envelope[Any]], state: CatalogState | None = None) -> list[S]:
    return [o.status for o in plan_batch(events, state or CatalogState()).outcomes]


def test_the_highest_version_wins_and_one_write_per_key() -> None:
    events = [upsert("t1", 2), upsert("t1", 1), upsert("t1", 3), upsert("t1", 3)]

    plan = plan_batch(events, CatalogState())

    assert [o.status for o in plan.outcomes] == [S.STORED, S.STALE, S.STORED, S.DUPLICATE]
    assert list(plan.titles) == ["t1"]
    assert plan.titles["t1"]["version"] == 3
    assert plan.titles["t1"]["event_id"] == str(events[2].event_id)


def test_a_removal_wins_a_version_tie_and_a_late_upsert_stays_out() -> None:
    state = CatalogState(titles={"t1": TitleGuard(4, removed=False, event_id="e0")})
    removal = example_event("catalog.title_removed", title_id="t1", version=4)

    plan = plan_batch([removal, upsert("t1", 4)], state)

    assert [o.status for o in plan.outcomes] == [S.STORED, S.STALE]
    assert plan.outcomes[1].reason == "title was removed at version 4"
    assert plan.titles["t1"]["removed"] is True
    # The given state is the store's: the fold works on a copy.
    assert state.titles["t1"] == TitleGuard(4, removed=False, event_id="e0")


def test_relations_follow_event_time_with_the_event_id_breaking_ties() -> None:
    fields = {"from_title_id": "a", "to_title_id": "b", "kind": "similar"}
    first = example_event("catalog.relation_added", occurred_at=EXAMPLE_TIME, weight=0.2,
                          **fields)
    # Same event time, created later: a larger UUIDv7, so it wins the tie.
    second = example_event("catalog.relation_added", occurred_at=EXAMPLE_TIME, weight=0.9,
                           **fields)
    later = example_event("catalog.relation_removed",
                          occurred_at=EXAMPLE_TIME + timedelta(seconds=1), **fields)
    assert str(first.event_id) < str(second.event_id)
    assert key_of(first) == ("relation", "a:b:similar")

    assert statuses([later, first]) == [S.STORED, S.STALE]
    assert statuses([first, first]) == [S.STORED, S.DUPLICATE]
    assert statuses([second, first]) == [S.STORED, S.STALE]
    assert statuses([first, second]) == [S.STORED, S.STORED]
    stored = CatalogState(relations={"a:b:similar": RelationGuard(
        to_micros(EXAMPLE_TIME), str(second.event_id), removed=False)})
    assert statuses([first], stored) == [S.STALE]


def test_assets_are_immutable_per_id() -> None:
    upload = new_event(image_asset(PNG_1X1, asset_id="p1", title_id="t1"), source="unit-test")
    # The same image with an ancillary chunk inserted before IEND: other bytes, still a PNG.
    extra = struct.pack(">I", 1) + b"raNd" + b"x" + struct.pack(">I", zlib.crc32(b"raNdx"))
    other_png = PNG_1X1[:-12] + extra + PNG_1X1[-12:]
    other = new_event(image_asset(other_png, asset_id="p1", title_id="t1"), source="unit-test")

    plan = plan_batch([upload, upload, other], CatalogState())

    assert [o.status for o in plan.outcomes] == [S.STORED, S.DUPLICATE, S.REJECTED]
    assert "immutable" in (plan.outcomes[2].reason or "")
    assert plan.assets["p1"].data == PNG_1X1
    assert statuses([upload], CatalogState(assets={"p1": upload.payload.sha256})) == [
        S.DUPLICATE
    ]


def test_a_corrupt_upload_refuses_the_whole_batch_before_any_plan() -> None:
    upload = new_event(image_asset(PNG_1X1, asset_id="p1", title_id="t1"), source="unit-test")
    payload = upload.payload.model_copy(
        update={"data_base64": base64.b64encode(PNG_1X1[:-1] + b"x").decode()}
    )
    bad = upload.model_copy(update={"payload": payload})

    with pytest.raises(CorruptUpload) as caught:
        plan_batch([upsert("t1", 1), bad], CatalogState())

    assert caught.value.event_id == bad.event_id
    assert "sha256" in caught.value.reason


def test_other_events_are_rejected_by_name() -> None:
    login = example_event("session.login_started")

    outcome = plan_batch([login], CatalogState()).outcomes[0]

    assert outcome.status is S.REJECTED
    assert outcome.reason == "session.login_started is not a catalog event (sink mongo)"
    assert key_of(login) is None


def test_chunks_reassemble_only_when_whole() -> None:
    data = bytes(range(256)) * (CHUNK_SIZE // 128)  # two full chunks
    info_event = new_event(image_asset(PNG_1X1, asset_id="p1", title_id="t1"),
                           source="unit-test")
    info = asset_info_from_document(asset_file_document(info_event))
    parts = chunked(data)

    assert [len(p) for p in parts] == [CHUNK_SIZE, CHUNK_SIZE]
    assert assembled_intact(info, [0], PNG_1X1)
    assert not assembled_intact(info, [1], PNG_1X1)
    assert not assembled_intact(info, [0], PNG_1X1[:-1])
