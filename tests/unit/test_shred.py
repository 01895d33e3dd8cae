"""Crypto-shredding of personal fields (polystream.shred): the record codec, the key cache and
the consumer wrapper, over in-memory keys. The real stack: tests/api/test_erasure_stack.py."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from polystream.bus.ports import BusError, ProgressMark, PublishError, Record
from polystream.domain.errors import EventValidationError
from polystream.domain.events import (
    EVENT_TYPES,
    AnyEvent,
    decode,
    encode,
    new_event,
    personal_paths,
)
from polystream.domain.examples import example_payload
from polystream.settings import PostgresSettings, PrivacySettings, Settings
from polystream.shred import key_cache, wrap_consumer
from polystream.shred.bus import KeyCache, ShreddingConsumer, ShreddingPublisher, open_values
from polystream.shred.fields import (
    NO_KEY,
    PREFIX,
    UNREADABLE,
    erased_value,
    open_sealed,
    seal,
    sealed_for,
)
from polystream.shred.keys import KeyStoreError, MemoryKeyStore

PERSONAL_TYPES = sorted(t for t in EVENT_TYPES if personal_paths(t))


def _event(event_type: str, **overrides: Any) -> AnyEvent:
    return new_event(example_payload(event_type, **overrides), source="test")


def _at(data: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` (``*`` = every item) of JSON-shaped data."""
    if not path:
        return [data]
    head, rest = path[0], path[1:]
    if head == "*":
        return [v for item in data or [] for v in _at(item, rest)]
    if not isinstance(data, dict) or data.get(head) is None:
        return []
    return _at(data[head], rest)


def _personal_values(event: AnyEvent) -> list[Any]:
    data = event.model_dump(mode="json")
    return [v for path in personal_paths(event.type) for v in _at(data, path)]


def test_the_personal_event_types_are_the_ones_expected() -> None:
    # Guards the test below from passing vacuously.
    assert {"user.registered", "session.login_started", "rating.submitted"} <= set(PERSONAL_TYPES)


@pytest.mark.parametrize("event_type", PERSONAL_TYPES)
def test_sealed_fields_hide_every_personal_value_and_open_to_the_same_event(
        event_type: str) -> None:
    overrides = {"review": "canary review text"} if event_type == "rating.submitted" else {}
    event = _event(event_type, **overrides)
    key = MemoryKeyStore().issue([event.key])[event.key]
    raw = encode(event)
    sealed = seal(raw, lambda _user: key)
    values = _personal_values(event)
    assert values, "the example carries no personal value"
    wire = json.loads(sealed)
    for path in personal_paths(event_type):
        for value in _at(wire, path):
            assert isinstance(value, str) and value.startswith(PREFIX)
    for value in values:
        assert json.dumps(value)[1:-1].encode() not in sealed or isinstance(value, int)
    found = sealed_for(sealed)
    assert found is not None and found[1] == event.key
    assert decode(open_sealed(*found, key)) == event


@pytest.mark.parametrize("event_type", PERSONAL_TYPES)
def test_a_destroyed_key_reads_as_erased_values_that_validate(event_type: str) -> None:
    # A new x-personal field needs an erased value (or accepts null): a consumer must read a
    # record of an erased user without dead-lettering it.
    overrides = {"review": "canary review text"} if event_type == "rating.submitted" else {}
    event = _event(event_type, **overrides)
    key = MemoryKeyStore().issue([event.key])[event.key]
    found = sealed_for(seal(encode(event), lambda _user: key))
    assert found is not None
    opened = decode(open_sealed(*found, None))
    data, before = opened.model_dump(mode="json"), event.model_dump(mode="json")
    for path in personal_paths(event_type):
        expected = erased_value(path[-1], event.key)
        had = bool(_at(before, path))
        assert _at(data, path) == ([expected] if had and expected is not None else [])
        assert not set(map(json.dumps, _at(data, path))) & set(map(json.dumps, _at(before, path)))
    # Everything that is not personal is untouched (ids, times, scores).
    assert data["event_id"] == before["event_id"] and data["key"] == before["key"]


@pytest.mark.parametrize("event_type", PERSONAL_TYPES)
def test_a_producer_with_no_key_for_an_erased_user_publishes_erased_values(
        event_type: str) -> None:
    event = _event(event_type)
    raw = seal(encode(event), lambda _user: None)
    assert PREFIX.encode() not in raw
    opened = decode(raw)
    for path in personal_paths(event_type):
        for value in _at(opened.model_dump(mode="json"), path):
            assert value == erased_value(path[-1], event.key)


def test_a_field_sealed_for_another_user_does_not_open_and_the_record_is_refused() -> None:
    keys = MemoryKeyStore()
    alice = _event("user.registered", user_id="alice", email="alice@example.com")
    bob = _event("user.registered", user_id="bob", email="bob@example.com")
    k_alice, k_bob = keys.issue(["alice"])["alice"], keys.issue(["bob"])["bob"]
    stolen = json.loads(seal(encode(alice), lambda _u: k_alice))["payload"]["email"]
    forged = json.loads(seal(encode(bob), lambda _u: k_bob))
    forged["payload"]["email"] = stolen
    found = sealed_for(json.dumps(forged).encode())
    assert found is not None
    opened = json.loads(open_sealed(*found, k_bob))
    assert opened["payload"]["email"] == UNREADABLE
    with pytest.raises(EventValidationError) as info:
        decode(json.dumps(opened).encode())
    assert any(e.path == "payload.email" for e in info.value.errors)


def test_a_user_the_key_store_never_heard_of_is_refused_not_read_as_erased(
        caplog: pytest.LogCaptureFixture) -> None:
    """Sealed with another key database (a misconfigured deployment): the record is
    dead-lettered with a telling value at the field's path, never silently stored erased."""
    theirs, ours = MemoryKeyStore(), MemoryKeyStore()
    ours.erase(["bob"])  # erased here: a row, key None
    values = [seal(encode(_event("user.registered", user_id=u, email=f"{u}@example.com")),
                   lambda user: theirs.issue([user])[user]) for u in ("alice", "bob")]
    alice, bob = open_values(values, KeyCache(ours))
    assert json.loads(alice)["payload"]["email"] == NO_KEY
    with pytest.raises(EventValidationError) as info:
        decode(alice)
    assert any(e.path == "payload.email" for e in info.value.errors)
    assert json.loads(bob)["payload"]["email"] == erased_value("email", "bob")
    decode(bob)  # valid: an erased user's record is handled, not dead-lettered
    assert "no data key" in caplog.text and "keys_database" in caplog.text


def test_records_without_personal_fields_and_garbage_pass_unchanged() -> None:
    plain = encode(_event("catalog.title_upserted"))
    assert seal(plain, lambda _u: pytest.fail("no key wanted")) is plain
    for garbage in (b"", b"\xff\x00", b"[1,2]", b'{"type": "user.registered"}',
                    b'{"type": "poison.never_registered", "key": "ann"}'):
        assert seal(garbage, lambda _u: b"k" * 32) == garbage
        assert sealed_for(garbage) is None


def test_free_text_that_looks_sealed_outside_a_personal_field_is_left_alone() -> None:
    event = _event("catalog.title_upserted")
    data = json.loads(encode(event))
    data["payload"]["title"] = PREFIX + "not a sealed value"
    raw = json.dumps(data).encode()
    found = sealed_for(raw)
    assert found is not None  # the substring test is cheap and coarse ...
    opened = decode(open_sealed(*found, None)).model_dump(mode="json")
    assert opened["payload"]["title"] == PREFIX + "not a sealed value"


def test_the_key_cache_fetches_a_batch_in_one_round_trip_and_keeps_erasure_final() -> None:
    store = MemoryKeyStore()
    users = [f"u{i}" for i in range(500)]
    store.issue(users)
    cache = KeyCache(store, size=1000)
    before = store.round_trips
    keys = cache.for_opening(users)
    assert store.round_trips == before + 1 and all(keys[u] for u in users)
    cache.for_opening(users)
    assert store.round_trips == before + 1 and cache.hits == 500
    cache.erase(["u1"])
    assert cache.for_opening(["u1"]) == {"u1": None}
    assert store.keys["u1"] is None
    assert cache.for_sealing("u1") is None  # never issued again


def test_the_key_cache_is_bounded() -> None:
    store = MemoryKeyStore()
    cache = KeyCache(store, size=10)
    for i in range(50):
        cache.for_sealing(f"u{i}")
    before = store.round_trips
    cache.for_opening([f"u{i}" for i in range(40, 50)])
    assert store.round_trips == before
    cache.for_opening(["u0"])
    assert store.round_trips == before + 1


class _Published:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, bytes] | None = None) -> Any:
        self.values.append(value)

    def publish_fire(self, topic: str, key: str, value: bytes,
                     headers: Mapping[str, bytes] | None = None) -> None:
        self.values.append(value)

    def flush(self, timeout_s: float = 30.0) -> None: ...

    def close(self, timeout_s: float = 30.0) -> None: ...

    def stats(self) -> Any: ...


class _Consumer:
    """A partition of records; ``seek_to`` moves its position back."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.position = 0
        self.committed: list[int] = []

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        batch = self.records[self.position:self.position + max_records]
        self.position += len(batch)
        return batch

    def seek_to(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.position = min(offsets.values())

    def commit(self, records: Sequence[Record]) -> None:
        self.committed.append(max(r.offset for r in records))

    def seek_to_committed(self) -> None: ...
    def assignment(self) -> list[tuple[str, int]]: return [("t", 0)]
    def partition_of(self, topic: str, key: str) -> int: return 0
    def processed_before(self, marks: Sequence[ProgressMark]) -> list[bool]: return []
    def pause(self, partitions: Sequence[tuple[str, int]]) -> None: ...
    def resume(self, partitions: Sequence[tuple[str, int]]) -> None: ...
    def close(self) -> None: ...


def _records(values: list[bytes], keys: list[str]) -> list[Record]:
    return [Record("t", 0, i, k.encode(), v) for i, (v, k) in enumerate(zip(values, keys,
                                                                          strict=True))]


def test_publisher_seals_and_consumer_opens_then_erasure_at_commit_shreds() -> None:
    store = MemoryKeyStore()
    published = _Published()
    pub = ShreddingPublisher(published, KeyCache(store))
    events = [_event("user.registered", user_id="ann", email="ann@example.com"),
              _event("session.login_started", user_id="ann"),
              _event("user.erased", user_id="ann"),
              _event("user.registered", user_id="bo", email="bo@example.com")]
    for event in events:
        pub.publish_fire("t", event.key, encode(event))
    assert not any(b"ann@example.com" in v or b"bo@example.com" in v for v in published.values)
    log = _records(published.values, [e.key for e in events])

    inner = _Consumer(log)
    consumer = ShreddingConsumer(inner, KeyCache(store), erases=True)
    batch = consumer.poll_batch(10, 0)
    assert [decode(r.value or b"") for r in batch] == events
    assert store.keys["ann"] is not None  # not before the erasure is committed
    consumer.commit(batch)
    assert store.keys["ann"] is None and store.keys["bo"] is not None

    # A replay after the erasure, from a fresh process: Ann's fields read as erased, Bo's open.
    replay = ShreddingConsumer(_Consumer(log), KeyCache(store))
    again = [decode(r.value or b"") for r in replay.poll_batch(10, 0)]
    assert again[0].payload.email == erased_value("email", "ann")
    assert again[3] == events[3]


def test_a_key_store_outage_delivers_the_batch_again_later() -> None:
    store = MemoryKeyStore()
    event = _event("user.registered", user_id="ann")
    value = seal(encode(event), lambda u: store.issue([u])[u])
    inner = _Consumer(_records([value], ["ann"]))

    class Down(MemoryKeyStore):
        def fetch(self, users: Any) -> dict[str, bytes | None]:
            raise KeyStoreError("down")

    down = Down()
    consumer = ShreddingConsumer(inner, KeyCache(down), retry_s=0)
    assert consumer.poll_batch(10, 0) == [] and inner.position == 0
    consumer.keys = KeyCache(store)
    assert decode(consumer.poll_batch(10, 0)[0].value or b"") == event


def test_a_failed_key_destruction_refuses_the_commit() -> None:
    store = MemoryKeyStore()
    event = _event("user.erased", user_id="ann")

    class Broken(MemoryKeyStore):
        def erase(self, users: Any) -> None:
            raise KeyStoreError("down")

    inner = _Consumer(_records([encode(event)], ["ann"]))
    consumer = ShreddingConsumer(inner, KeyCache(Broken()), erases=True)
    batch = consumer.poll_batch(10, 0)
    with pytest.raises(BusError):
        consumer.commit(batch)
    assert inner.committed == [] and store.round_trips == 0


def test_open_values_without_sealed_records_touches_no_key() -> None:
    store = MemoryKeyStore()
    values = [encode(_event("catalog.title_upserted")), b"garbage"]
    assert open_values(values, KeyCache(store)) == values and store.round_trips == 0


@pytest.mark.parametrize("length", range(1, 9))
def test_sealed_values_of_every_length_open(length: int) -> None:
    # base64 padding depends on the length of each sealed value
    event = _event("user.registered", display_name="x" * length)
    key = b"\x02" * 32
    found = sealed_for(seal(encode(event), lambda _u: key))
    assert found is not None and decode(open_sealed(*found, key)) == event


def test_a_producer_that_cannot_reach_the_keys_publishes_nothing() -> None:
    class Down(MemoryKeyStore):
        def issue(self, users: Any) -> dict[str, bytes | None]:
            raise KeyStoreError("down")

    published = _Published()
    pub = ShreddingPublisher(published, KeyCache(Down()))
    with pytest.raises(PublishError, match="not sealed"):
        pub.publish_fire("t", "ann", encode(_event("user.registered", user_id="ann")))
    assert published.values == []
    # Events without personal fields need no key and still go out.
    pub.publish_fire("t", "x", encode(_event("catalog.title_upserted")))
    assert len(published.values) == 1


def test_consumers_open_sealed_fields_even_with_sealing_off_and_connect_only_when_needed(
) -> None:
    # A PostgreSQL nobody listens on: building the wrappers must not touch it.
    off = Settings(postgres=PostgresSettings(port=1, connect_timeout_s=1),
                   privacy=PrivacySettings(encrypt_personal=False, keys_database="keys"))
    assert key_cache(off, "test") is None  # producers publish in clear
    store = MemoryKeyStore()
    value = seal(encode(_event("user.registered", user_id="ann", email="ann@example.com")),
                 lambda u: store.issue([u])[u])
    consumer = wrap_consumer(off, _Consumer(_records([value], ["ann"])), "test")
    assert isinstance(consumer, ShreddingConsumer)
    # Its key database is only reached (and migrated) for the first sealed field: here it
    # does not answer, so the batch is handed back, not misread.
    consumer._retry_s = 0
    assert consumer.poll_batch(10, 0) == []
    consumer.keys = KeyCache(store)
    assert decode(consumer.poll_batch(10, 0)[0].value or b"").payload.model_dump()[
        "email"] == "ann@example.com"
