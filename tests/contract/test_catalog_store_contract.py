"""The catalog store contract, written once and run against both implementations.

What the MongoDB sink promises (DESIGN.md §2 and §4): titles keep their highest version
whatever the arrival order, removals leave tombstones that stale upserts cannot undo,
relations are readable from both ends and respect event time, assets round-trip with their
checksum, and replaying anything changes nothing. The mongo parameter runs on the real
server (FerretDB in the managed stack), one fresh database per test, dropped afterwards.
"""

from __future__ import annotations

import hashlib
import random
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import gridfs
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pymongo import MongoClient

from polystream.domain.catalog import AssetInfo, Direction, Edge
from polystream.domain.events import (
    MAX_ASSET_BYTES,
    AssetKind,
    Envelope,
    ImageType,
    ReceiptStatus,
    RelationKind,
    TitleUpserted,
    new_event,
)
from polystream.domain.examples import (
    EXAMPLE_TIME,
    example_event,
    example_payload,
    image_asset,
    movie_title,
)
from polystream.reads.catalog import MongoCatalogReads, latest_poster, summary
from polystream.settings import MongoSettings, Settings
from polystream.sinks.memory_catalog import InMemoryCatalogStore
from polystream.sinks.mongo import INDEXES, MongoCatalogStore
from polystream.sinks.ports import Outcome
from polystream.store_errors import PermanentStoreError, TransientStoreError

S = ReceiptStatus


class CatalogStore(Protocol):
    """What the tests use of a catalog store, whichever it is."""

    def ensure_indexes(self) -> list[str]: ...
    def apply(
        self, events: Sequence[Envelope[Any]], *, allow_defer: bool = True
    ) -> list[Outcome]: ...
    def get_title(self, title_id: str) -> dict[str, Any] | None: ...
    def list_titles(
        self, kind: str | None = None, genre: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]: ...
    def count_titles(self, kind: str | None = None, genre: str | None = None) -> int: ...
    def related(
        self, title_id: str, direction: Direction = "out", kind: str | None = None
    ) -> list[Edge]: ...
    def get_asset(self, asset_id: str) -> tuple[AssetInfo, bytes] | None: ...
    def list_assets(self, title_id: str) -> list[AssetInfo]: ...
    def snapshot(self) -> dict[str, list[dict[str, Any]]]: ...
    def close(self) -> None: ...


@dataclass
class MongoHarness:
    settings: MongoSettings
    client: MongoClient[dict[str, Any]]

    def store(self) -> MongoCatalogStore:
        return MongoCatalogStore.from_settings(self.settings)


@pytest.fixture
def mongo(settings: Settings, unique: str) -> Iterator[MongoHarness]:
    mongo_settings = settings.mongo.model_copy(update={"database": f"contract_catalog_{unique}"})
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_settings.url)
    try:
        yield MongoHarness(mongo_settings, client)
    finally:
        client.drop_database(mongo_settings.database)
        client.close()


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.stack)])
def store(request: pytest.FixtureRequest) -> Iterator[CatalogStore]:
    made: CatalogStore
    if request.param == "memory":
        made = InMemoryCatalogStore()
    else:
        made = request.getfixturevalue("mongo").store()
    made.ensure_indexes()
    try:
        yield made
    finally:
        made.close()


# ---------------------------------------------------------------------------------------
# Event builders
# ---------------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def upsert(
    title_id: str, version: int, *, series: bool = False, label: str = "", **fields: Any
) -> Envelope[Any]:
    name = f"Title {title_id[:8]} v{version}{label}"
    if series:
        payload = example_payload(
            "catalog.title_upserted", title_id=title_id, version=version, title=name, **fields
        )
    else:
        payload = movie_title(title_id=title_id, version=version, title=name, **fields)
    return new_event(payload, source="contract-test")


def removal(title_id: str, version: int) -> Envelope[Any]:
    return example_event("catalog.title_removed", title_id=title_id, version=version)


def relation(
    from_id: str,
    to_id: str,
    *,
    kind: str = "similar",
    weight: float = 0.5,
    seconds: float = 0,
    removed: bool = False,
) -> Envelope[Any]:
    at = EXAMPLE_TIME + timedelta(seconds=seconds)
    fields: dict[str, Any] = {"from_title_id": from_id, "to_title_id": to_id, "kind": kind}
    if removed:
        return example_event("catalog.relation_removed", occurred_at=at, **fields)
    return example_event("catalog.relation_added", occurred_at=at, weight=weight, **fields)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def image(size: int, seed: int = 0) -> bytes:
    """A well-formed 1x1 PNG of exactly ``size`` bytes: its header, a private ancillary chunk
    of reproducible pseudo-random bytes (incompressible, so it stays that size), its end."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    filler = random.Random(seed).randbytes(size - 8 - len(header) - 12 - 12)
    return (b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"raNd", filler)
            + _png_chunk(b"IEND", b""))


def upload(asset_id: str, title_id: str, data: bytes, *, kind: str = "poster") -> Envelope[Any]:
    payload = image_asset(data, asset_id=asset_id, title_id=title_id, kind=kind)
    return new_event(payload, source="contract-test")


def corrupted(event: Envelope[Any]) -> Envelope[Any]:
    """The same upload with other bytes under the original checksum. Only a bypass of
    validation (model_copy) can build it, which is what the store must not trust."""
    other = image(event.payload.size_bytes, seed=999)
    payload = event.payload.model_copy(update={"data_base64": image_asset(other).data_base64})
    return event.model_copy(update={"payload": payload})


def statuses(outcomes: Sequence[Outcome]) -> list[ReceiptStatus]:
    return [outcome.status for outcome in outcomes]


def data_of(event: Envelope[Any]) -> dict[str, Any]:
    return dict(event.payload.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------
# Titles
# ---------------------------------------------------------------------------------------


def test_movie_and_series_round_trip(store: CatalogStore) -> None:
    series = example_event(TitleUpserted)
    movie = new_event(movie_title(), source="contract-test")

    assert statuses(store.apply([series, movie])) == [S.STORED, S.STORED]

    assert store.get_title(series.payload.title_id) == data_of(series)
    assert store.get_title(movie.payload.title_id) == data_of(movie)
    assert store.get_title(new_id()) is None
    assert store.count_titles() == 2
    assert store.count_titles(kind="series") == 1
    # Newest year first: the series is from 2021, the movie from 1998.
    assert store.list_titles() == [data_of(series), data_of(movie)]
    assert store.list_titles(kind="movie") == [data_of(movie)]
    assert store.list_titles(genre="science_fiction") == [data_of(series)]
    assert store.list_titles(genre="drama", limit=1, offset=1) == [data_of(movie)]
    assert store.list_titles(genre="western") == []


def test_list_titles_pages_in_a_stable_order(store: CatalogStore) -> None:
    ids = sorted(new_id() for _ in range(7))
    years = [2001, 1999, 2001, 2010, 1999, 2001, 2024]
    events = [upsert(t, 1, year=year) for t, year in zip(ids, years, strict=True)]
    store.apply(events)

    expected = [
        t for _, t in sorted(zip(years, ids, strict=True), key=lambda pair: (-pair[0], pair[1]))
    ]
    pages = [store.list_titles(limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [title["title_id"] for page in pages for title in page] == expected
    with pytest.raises(ValueError):
        store.list_titles(limit=0)


def test_kind_change_drops_the_other_kind_s_fields(store: CatalogStore) -> None:
    title_id = new_id()
    store.apply([upsert(title_id, 1, series=True)])
    movie = upsert(title_id, 2)

    assert statuses(store.apply([movie])) == [S.STORED]

    # A snapshot replaces the document: the series' seasons must not survive as a movie.
    assert store.get_title(title_id) == data_of(movie)
    assert store.count_titles(kind="series") == 0


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_highest_version_wins_in_any_order(store: CatalogStore, data: st.DataObject) -> None:
    versions = data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=8), label="versions")
    order = data.draw(st.permutations(versions), label="arrival order")
    cuts = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    title_id = new_id()
    events = [
        upsert(title_id, version, series=version % 2 == 0, label=f" #{position}")
        for position, version in enumerate(order)
    ]

    outcomes: list[Outcome] = []
    batch: list[Envelope[Any]] = []
    for event, cut in zip(events, cuts, strict=True):
        batch.append(event)
        if cut:
            outcomes += store.apply(batch)
            batch = []
    outcomes += store.apply(batch) if batch else []

    expected: list[ReceiptStatus] = []
    best = 0
    for version in order:
        expected.append(S.STORED if version > best else S.DUPLICATE if version == best else S.STALE)
        best = max(best, version)
    assert statuses(outcomes) == expected
    # The first arrival of the highest version is the one kept; later equal ones are
    # duplicates and change nothing.
    first_best = next(event for event in events if event.payload.version == max(versions))
    assert store.get_title(title_id) == data_of(first_best)


@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    changes=st.lists(st.tuples(st.integers(1, 6), st.booleans()), min_size=1, max_size=8),
    single_batch=st.booleans(),
)
def test_upserts_and_removals_end_in_the_newest_state(
    store: CatalogStore, changes: list[tuple[int, bool]], single_batch: bool
) -> None:
    title_id = new_id()
    events = [
        removal(title_id, version) if removed else upsert(title_id, version)
        for version, removed in changes
    ]
    if single_batch:
        store.apply(events)
    else:
        for event in events:
            store.apply([event])

    top = max(version for version, _ in changes)
    # A removal wins a tie with an upsert of the same version, whatever came first.
    if any(removed for version, removed in changes if version == top):
        assert store.get_title(title_id) is None
    else:
        first = next(e for e in events if e.payload.version == top)
        assert store.get_title(title_id) == data_of(first)


def test_duplicate_delivery_changes_nothing(store: CatalogStore) -> None:
    event = example_event("catalog.title_upserted")
    assert statuses(store.apply([event, event])) == [S.STORED, S.DUPLICATE]
    before = store.snapshot()

    assert statuses(store.apply([event])) == [S.DUPLICATE]
    assert store.snapshot() == before


def test_removal_tombstone_blocks_stale_upserts(store: CatalogStore) -> None:
    title_id = new_id()
    v3 = upsert(title_id, 3)
    store.apply([v3])

    assert statuses(store.apply([removal(title_id, 4)])) == [S.STORED]
    assert store.get_title(title_id) is None
    assert store.count_titles() == 0
    assert store.list_titles() == []

    late = store.apply([upsert(title_id, 3), upsert(title_id, 2), upsert(title_id, 4)])
    assert statuses(late) == [S.STALE, S.STALE, S.STALE]
    assert store.get_title(title_id) is None
    assert statuses(store.apply([removal(title_id, 4), removal(title_id, 1)])) == [
        S.DUPLICATE,
        S.STALE,
    ]

    # A newer version brings the title back: that is a re-publication, not a stale write.
    v5 = upsert(title_id, 5)
    assert statuses(store.apply([v5])) == [S.STORED]
    assert store.get_title(title_id) == data_of(v5)


def test_removal_before_its_title_arrives(store: CatalogStore) -> None:
    title_id = new_id()
    assert statuses(store.apply([removal(title_id, 2)])) == [S.STORED]
    assert statuses(store.apply([upsert(title_id, 1)])) == [S.STALE]
    assert store.get_title(title_id) is None


def test_events_of_other_sinks_are_rejected(store: CatalogStore) -> None:
    [outcome] = store.apply([example_event("rating.submitted")])
    assert outcome.status is S.REJECTED
    assert outcome.reason and not outcome.retryable


@pytest.mark.parametrize("allow_defer", [True, False])
def test_nothing_in_the_catalog_is_deferred(store: CatalogStore, allow_defer: bool) -> None:
    # Relations to titles that have not arrived are stored, whatever the worker allows.
    edge = relation(new_id(), new_id())
    assert statuses(store.apply([edge], allow_defer=allow_defer)) == [S.STORED]


# ---------------------------------------------------------------------------------------
# Relations
# ---------------------------------------------------------------------------------------


def edges(found: Sequence[Edge]) -> list[tuple[str, str, str, float]]:
    return [(e.from_title_id, e.to_title_id, e.kind.value, e.weight) for e in found]


def test_relations_read_from_both_ends(store: CatalogStore) -> None:
    a, b, c, d = (new_id() for _ in range(4))
    # Titles need not exist: an edge can arrive before the titles it links.
    added = [
        relation(a, b, weight=0.9),
        relation(a, c, kind="sequel", weight=0.4),
        relation(d, a, weight=0.7),
        relation(a, b, kind="same_director", weight=0.2),
    ]
    assert statuses(store.apply(added)) == [S.STORED] * 4

    assert edges(store.related(a)) == [
        (a, b, "similar", 0.9),
        (a, c, "sequel", 0.4),
        (a, b, "same_director", 0.2),
    ]
    assert edges(store.related(a, "in")) == [(d, a, "similar", 0.7)]
    assert edges(store.related(a, "both", kind=RelationKind.SIMILAR)) == [
        (a, b, "similar", 0.9),
        (d, a, "similar", 0.7),
    ]
    assert edges(store.related(b, "in")) == [(a, b, "similar", 0.9), (a, b, "same_director", 0.2)]
    assert edges(store.related(b, "out")) == []
    [edge] = store.related(c, "in")
    assert edge.updated_at == added[1].occurred_at
    with pytest.raises(ValueError):
        store.related(a, "sideways")  # type: ignore[arg-type]


def test_relation_removal_respects_event_time(store: CatalogStore) -> None:
    a, b = new_id(), new_id()
    store.apply([relation(a, b, seconds=10)])

    # A removal older than the edge is stale; the edge stays.
    assert statuses(store.apply([relation(a, b, seconds=5, removed=True)])) == [S.STALE]
    assert edges(store.related(a)) == [(a, b, "similar", 0.5)]

    assert statuses(store.apply([relation(a, b, seconds=20, removed=True)])) == [S.STORED]
    assert store.related(a) == [] and store.related(b, "in") == []

    # An add older than the removal must not resurrect the edge.
    assert statuses(store.apply([relation(a, b, seconds=15, weight=0.8)])) == [S.STALE]
    assert store.related(a, "both") == []

    newer = relation(a, b, seconds=30, weight=0.3)
    assert statuses(store.apply([newer, newer])) == [S.STORED, S.DUPLICATE]
    assert edges(store.related(b, "in")) == [(a, b, "similar", 0.3)]


def test_removing_an_unknown_relation_leaves_a_tombstone(store: CatalogStore) -> None:
    a, b = new_id(), new_id()
    assert statuses(store.apply([relation(a, b, seconds=10, removed=True)])) == [S.STORED]
    assert statuses(store.apply([relation(a, b, seconds=5)])) == [S.STALE]
    assert store.related(a) == []


# ---------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [73, 20 * 1024, 400 * 1024], ids=["tiny", "20KiB", "2chunks"])
def test_asset_round_trip(store: CatalogStore, size: int) -> None:
    title_id, asset_id = new_id(), new_id()
    data = image(size)
    event = upload(asset_id, title_id, data)

    assert statuses(store.apply([event])) == [S.STORED]

    found = store.get_asset(asset_id)
    assert found is not None
    info, stored = found
    assert stored == data
    assert info == AssetInfo(
        asset_id=asset_id,
        title_id=title_id,
        kind=AssetKind.POSTER,
        content_type=ImageType.PNG,
        size_bytes=size,
        sha256=hashlib.sha256(data).hexdigest(),
        filename=f"poster-{asset_id}.png",
        uploaded_at=event.occurred_at,
    )
    assert store.list_assets(title_id) == [info]
    assert store.get_asset(new_id()) is None


def test_assets_are_listed_per_title(store: CatalogStore) -> None:
    title_id, other = new_id(), new_id()
    ids = sorted(new_id() for _ in range(3))
    store.apply(
        [
            upload(ids[2], title_id, image(100, 1), kind="backdrop"),
            upload(ids[0], title_id, image(100, 2)),
            upload(ids[1], other, image(100, 3), kind="thumbnail"),
        ]
    )
    assert [a.asset_id for a in store.list_assets(title_id)] == [ids[0], ids[2]]
    assert [a.kind for a in store.list_assets(other)] == [AssetKind.THUMBNAIL]
    assert store.list_assets(new_id()) == []


def test_duplicate_and_conflicting_assets(store: CatalogStore) -> None:
    title_id, asset_id = new_id(), new_id()
    event = upload(asset_id, title_id, image(5000))
    assert statuses(store.apply([event, event])) == [S.STORED, S.DUPLICATE]
    before = store.snapshot()

    # The same bytes in a new event (a re-upload) is still the same asset.
    again = upload(asset_id, title_id, image(5000))
    other_bytes = upload(asset_id, title_id, image(5000, seed=7))
    outcomes = store.apply([event, again, other_bytes])
    assert statuses(outcomes) == [S.DUPLICATE, S.DUPLICATE, S.REJECTED]
    assert outcomes[2].reason and asset_id in outcomes[2].reason
    assert store.snapshot() == before


def test_corrupt_asset_is_a_permanent_error_and_nothing_is_written(
    store: CatalogStore,
) -> None:
    title_id, asset_id = new_id(), new_id()
    good_title = upsert(title_id, 1)
    bad = corrupted(upload(asset_id, title_id, image(3000)))
    before = store.snapshot()

    with pytest.raises(PermanentStoreError) as caught:
        store.apply([good_title, bad])

    assert caught.value.event_id == bad.event_id
    assert "sha256" in caught.value.reason
    assert store.snapshot() == before
    # The worker dead-letters the bad event and applies the rest.
    assert statuses(store.apply([good_title])) == [S.STORED]
    assert store.get_asset(asset_id) is None


# ---------------------------------------------------------------------------------------
# Replays and large mixed batches
# ---------------------------------------------------------------------------------------


def mixed_batch() -> list[Envelope[Any]]:
    a, b, c = new_id(), new_id(), new_id()
    return [
        upsert(a, 1, series=True),
        upsert(b, 2),
        upsert(a, 3, series=True),
        upsert(b, 1),
        removal(c, 5),
        upsert(c, 4),
        relation(a, b, seconds=1),
        relation(b, a, kind="sequel", seconds=2, weight=0.1),
        relation(a, b, seconds=3, removed=True),
        relation(a, c, seconds=4, weight=0.6),
        upload(new_id(), a, image(1024, 1)),
        upload(new_id(), b, image(300 * 1024, 2), kind="backdrop"),
        example_event("catalog.title_upserted"),
    ]


def test_replaying_a_mixed_batch_changes_nothing(store: CatalogStore) -> None:
    batch = mixed_batch()
    first = statuses(store.apply(batch))
    assert first == [
        S.STORED, S.STORED, S.STORED, S.STALE, S.STORED, S.STALE,
        S.STORED, S.STORED, S.STORED, S.STORED, S.STORED, S.STORED, S.STORED,
    ]  # fmt: skip
    before = store.snapshot()

    replayed = statuses(store.apply(batch))
    assert set(replayed) <= {S.DUPLICATE, S.STALE}
    assert store.snapshot() == before
    # Replayed one event at a time (another batching of the same log), still nothing moves.
    for event in batch:
        assert statuses(store.apply([event]))[0] in {S.DUPLICATE, S.STALE}
    assert store.snapshot() == before


class Oracle:
    """The catalog rules, written as plainly as possible, one event at a time."""

    def __init__(self) -> None:
        self.titles: dict[str, tuple[int, bool, dict[str, Any] | None]] = {}
        self.edges: dict[tuple[str, str, str], tuple[int, str, float | None]] = {}
        self.assets: dict[str, tuple[str, str]] = {}  # asset_id -> (title_id, sha256)

    def apply(self, event: Envelope[Any]) -> ReceiptStatus:
        p = event.payload
        if event.type in ("catalog.title_upserted", "catalog.title_removed"):
            removed = event.type == "catalog.title_removed"
            current = self.titles.get(p.title_id)
            if current is not None:
                if p.version < current[0]:
                    return S.STALE
                if p.version == current[0]:
                    if current[1]:
                        return S.DUPLICATE if removed else S.STALE
                    if not removed:
                        return S.DUPLICATE
            self.titles[p.title_id] = (p.version, removed, None if removed else data_of(event))
            return S.STORED
        if event.type in ("catalog.relation_added", "catalog.relation_removed"):
            edge_key = (p.from_title_id, p.to_title_id, p.kind.value)
            stamp = (int(event.occurred_at.timestamp() * 1_000_000), str(event.event_id))
            edge = self.edges.get(edge_key)
            if edge is not None:
                if edge[1] == stamp[1]:
                    return S.DUPLICATE
                if stamp <= edge[:2]:
                    return S.STALE
            weight = p.weight if event.type == "catalog.relation_added" else None
            self.edges[edge_key] = (*stamp, weight)
            return S.STORED
        if p.asset_id in self.assets:
            return S.DUPLICATE if self.assets[p.asset_id][1] == p.sha256 else S.REJECTED
        self.assets[p.asset_id] = (p.title_id, p.sha256)
        return S.STORED


def random_catalog_events(rng: random.Random, count: int) -> list[Envelope[Any]]:
    titles = [new_id() for _ in range(40)]
    asset_ids = [new_id() for _ in range(30)]
    kinds = ["similar", "sequel"]
    events: list[Envelope[Any]] = []
    while len(events) < count:
        roll = rng.random()
        title = rng.choice(titles)
        if events and roll < 0.1:
            events.append(rng.choice(events))  # redelivery
        elif roll < 0.45:
            version = rng.randint(1, 8)
            events.append(upsert(title, version, series=titles.index(title) % 2 == 1))
        elif roll < 0.52:
            events.append(removal(title, rng.randint(1, 9)))
        elif roll < 0.85:
            other = rng.choice([t for t in titles[:6] if t != title])
            events.append(
                relation(
                    title,
                    other,
                    kind=rng.choice(kinds),
                    weight=round(rng.random(), 3),
                    seconds=rng.randint(0, 60),  # ties on purpose: the event id decides
                    removed=rng.random() < 0.3,
                )
            )
        else:
            asset = rng.randrange(len(asset_ids))
            # Mostly the asset's own bytes; sometimes other bytes under the same id.
            seed = asset if rng.random() < 0.85 else 1000 + asset
            events.append(upload(asset_ids[asset], titles[asset], image(600, seed)))
    return events


def check_against_oracle(
    store: CatalogStore, events: Sequence[Envelope[Any]], outcomes: Sequence[Outcome]
) -> Oracle:
    oracle = Oracle()
    assert statuses(outcomes) == [oracle.apply(event) for event in events]
    for title_id, (_, removed, data) in oracle.titles.items():
        assert store.get_title(title_id) == (None if removed else data)
    live_titles = sum(1 for _, removed, _ in oracle.titles.values() if not removed)
    assert store.count_titles() == live_titles
    sources = {key[0] for key in oracle.edges}
    for source in sources:
        expected = sorted(
            (
                (f, t, k, w)
                for (f, t, k), (_, _, w) in oracle.edges.items()
                if f == source and w is not None
            ),
            key=lambda e: (-e[3], e[0], e[1], e[2]),
        )
        assert edges(store.related(source)) == expected
    for asset_id, (title_id, sha) in oracle.assets.items():
        found = store.get_asset(asset_id)
        assert found is not None and found[0].title_id == title_id
        assert hashlib.sha256(found[1]).hexdigest() == sha
    return oracle


def test_a_batch_of_500_mixed_events(store: CatalogStore) -> None:
    events = random_catalog_events(random.Random(20250115), 500)
    outcomes = store.apply(events)
    check_against_oracle(store, events, outcomes)

    # Any batching of the same log ends in the same documents as one big batch.
    reference = InMemoryCatalogStore()
    reference.apply(events)
    assert store.snapshot() == reference.snapshot()


def test_500_events_in_random_batches_match_one_batch(store: CatalogStore) -> None:
    rng = random.Random(7)
    events = random_catalog_events(rng, 500)
    outcomes: list[Outcome] = []
    start = 0
    while start < len(events):
        size = rng.randint(1, 120)
        outcomes += store.apply(events[start : start + size])
        start += size
    check_against_oracle(store, events, outcomes)
    reference = InMemoryCatalogStore()
    reference.apply(events)
    assert store.snapshot() == reference.snapshot()


# ---------------------------------------------------------------------------------------
# MongoDB only: indexes, GridFS compatibility, concurrent writers, errors, the API's reads
# ---------------------------------------------------------------------------------------


@pytest.mark.stack
def test_ensure_indexes_is_idempotent(mongo: MongoHarness) -> None:
    store = mongo.store()
    try:
        created = store.ensure_indexes()
        assert len(created) == sum(len(models) for models in INDEXES.values())
        assert store.ensure_indexes() == []
        for name, models in INDEXES.items():
            found = {ix["name"] for ix in store.database[name].list_indexes()}
            assert {model.document["name"] for model in models} <= found
    finally:
        store.close()


@pytest.mark.stack
def test_assets_are_a_standard_gridfs_bucket(mongo: MongoHarness) -> None:
    store = mongo.store()
    try:
        store.ensure_indexes()
        title_id, asset_id = new_id(), new_id()
        data = image(MAX_ASSET_BYTES)  # three chunks of 255 KiB
        store.apply([upload(asset_id, title_id, data)])

        bucket = gridfs.GridFSBucket(store.database, bucket_name="assets")
        with bucket.open_download_stream(asset_id) as stream:
            assert stream.read() == data
            assert stream.metadata is not None
            assert stream.metadata["sha256"] == hashlib.sha256(data).hexdigest()
        assert [f._id for f in bucket.find({"metadata.title_id": title_id})] == [asset_id]
    finally:
        store.close()


@pytest.mark.stack
def test_an_upload_interrupted_before_its_file_document_is_redone(mongo: MongoHarness) -> None:
    store = mongo.store()
    try:
        store.ensure_indexes()
        asset_id = new_id()
        data = image(300 * 1024)
        # What a crash between the chunks and the files document leaves behind.
        store.database["assets.chunks"].insert_one({"files_id": asset_id, "n": 0, "data": b"x"})

        assert statuses(store.apply([upload(asset_id, new_id(), data)])) == [S.STORED]
        found = store.get_asset(asset_id)
        assert found is not None and found[1] == data
    finally:
        store.close()


class RacingStore(MongoCatalogStore):
    """Lets another writer in between one of this store's reads and the write after it."""

    intruder: list[Envelope[Any]]
    intrude_after_read: int
    rival: MongoCatalogStore
    reads = 0

    def _read_state(self, events: Sequence[Envelope[Any]], *, assets_only: bool) -> Any:
        state = super()._read_state(events, assets_only=assets_only)
        if self.reads == self.intrude_after_read:
            self.rival.apply(self.intruder)
        self.reads += 1
        return state


@pytest.mark.stack
@pytest.mark.parametrize("exists", [False, True], ids=["insert", "replace"])
@pytest.mark.parametrize("rival_version", [9, 2])
def test_a_concurrent_writer_is_detected_and_the_batch_refolded(
    mongo: MongoHarness, exists: bool, rival_version: int
) -> None:
    settings = mongo.settings
    client: MongoClient[dict[str, Any]] = MongoClient(settings.url, tz_aware=True)
    store = RacingStore(client, settings.database)
    rival = mongo.store()
    try:
        title_id = new_id()
        if exists:
            rival.apply([upsert(title_id, 1)])
        mine = upsert(title_id, 5)
        store.rival = rival
        store.intruder = [upsert(title_id, rival_version)]
        # A new key is inserted after the first read (which skips titles); an existing one is
        # replaced after the second, which reads it: the rival writes in between.
        store.intrude_after_read = 1 if exists else 0

        [outcome] = store.apply([mine])

        assert store.reads == (3 if exists else 2)
        if rival_version > 5:
            assert outcome.status is S.STALE
            assert store.get_title(title_id)["version"] == rival_version  # type: ignore[index]
        else:
            assert outcome.status is S.STORED
            assert store.get_title(title_id) == data_of(mine)
    finally:
        rival.close()
        client.close()


def test_an_unreachable_server_is_a_transient_error() -> None:
    store = MongoCatalogStore.from_settings(
        MongoSettings(url="mongodb://127.0.0.1:9/", server_selection_timeout_s=0.3)
    )
    try:
        with pytest.raises(TransientStoreError):
            store.apply([example_event("catalog.title_upserted")])
        with pytest.raises(TransientStoreError):
            store.get_title("x")
        with pytest.raises(TransientStoreError):
            store.ensure_indexes()
    finally:
        store.close()


@pytest.mark.stack
async def test_the_api_reads_see_what_the_store_wrote(mongo: MongoHarness) -> None:
    # The API reads the catalog through its own asyncio client (reads/catalog.py), not through
    # the sink: what the sink wrote must read back the same through it.
    store = mongo.store()
    reads = MongoCatalogReads.from_settings(mongo.settings, timeout_s=5.0)
    try:
        store.ensure_indexes()
        batch = mixed_batch()
        store.apply(batch)
        title_ids = sorted(
            {e.payload.title_id for e in batch if e.type.startswith("catalog.title")}
        )
        for title_id in title_ids:
            assert await reads.title(title_id) == store.get_title(title_id)
            assert await reads.poster(title_id) == latest_poster(store.list_assets(title_id))
        live = {t: summary(doc) for t in title_ids if (doc := store.get_title(t)) is not None}
        assert await reads.summaries(title_ids) == live
        edges = await reads.edges(title_ids)
        expected = {edge for t in title_ids for edge in store.related(t, "both")}
        assert len(edges) == len(expected)
        assert set(edges) == expected
        for event in batch:
            if event.type == "catalog.asset_uploaded":
                info, data = store.get_asset(event.payload.asset_id) or pytest.fail("no asset")
                assert b"".join([chunk async for chunk in reads.asset_bytes(info)]) == data
        assert await reads.title(new_id()) is None
    finally:
        await reads.close()
        store.close()


@pytest.mark.stack
@pytest.mark.parametrize("bulk_updates", [True, False], ids=["bulk", "per-statement"])
def test_both_update_modes_end_in_the_same_documents(
    mongo: MongoHarness, bulk_updates: bool
) -> None:
    # Production MongoDB replaces with one bulk_write, FerretDB with one statement per
    # command (see sinks/mongo.py); both paths run here. Batches stay far below the 50
    # statements that deadlock a FerretDB update command.
    store = MongoCatalogStore.from_settings(mongo.settings, bulk_updates=bulk_updates)
    reference = InMemoryCatalogStore()
    try:
        store.ensure_indexes()
        ids = [new_id() for _ in range(12)]
        rounds = [
            [upsert(t, 1, series=i % 3 == 0) for i, t in enumerate(ids)]
            + [relation(ids[0], t, seconds=1) for t in ids[1:]],
            [upsert(t, 2) for t in ids[:6]]
            + [removal(t, 3) for t in ids[6:9]]
            + [relation(ids[0], t, seconds=2, weight=0.9) for t in ids[1:5]]
            + [relation(ids[0], t, seconds=2, removed=True) for t in ids[5:8]],
            [upsert(t, 1) for t in ids[:6]] + [upsert(t, 4, series=True) for t in ids[6:8]],
        ]
        for batch in rounds:
            assert store.apply(batch) == reference.apply(batch)
        assert store.snapshot() == reference.snapshot()
    finally:
        store.close()
