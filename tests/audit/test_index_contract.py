"""The `AuditIndex` contract, written once and run against every implementation.

In memory, JSONL files, and OpenSearch (``-m stack``; each test gets its own index prefix and
drops it afterwards).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from polystream.audit.dead_letters import dead_letter_document
from polystream.audit.documents import (
    DocKind,
    EventDoc,
    LineageUpdate,
    bucket_of,
    coalesce,
    event_document,
    lineage_entry,
    lineage_update,
)
from polystream.audit.ports import AuditIndex, AuditQuery, InvalidCursor
from polystream.bus.ports import Record
from polystream.bus.topology import DeadLetterHeader, dead_letter_headers
from polystream.domain.events import Receipt, ReceiptStatus, Sink, encode

from .conftest import SECRET, event_at, now_utc

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def receipt(env: Any, sink: Sink, status: ReceiptStatus = ReceiptStatus.STORED,
            at: datetime | None = None, reason: str | None = None) -> LineageUpdate:
    return lineage_update(Receipt(event_id=env.event_id, event_type=env.type, sink=sink,
                                  status=status, reason=reason, processed_at=at or now_utc()))


def doc(env: Any) -> EventDoc:
    return event_document(env, None, secret=SECRET)


def write(index: AuditIndex, *items: Any) -> None:
    assert index.index_batch(list(items)) == []
    index.refresh()


def test_ensure_is_idempotent(index: AuditIndex) -> None:
    index.ensure()
    index.ensure()
    assert index.count() == 0
    assert index.search().total == 0


def test_one_document_per_event_however_often_it_is_written(index: AuditIndex) -> None:
    env = event_at("rating.submitted", T0)
    write(index, doc(env))
    first = index.get(env.event_id)
    assert first is not None and first.kind is DocKind.EVENT
    # Redelivery, replay, a second auditor: same _id, same document.
    write(index, doc(env), doc(env))
    write(index, doc(env))
    assert index.count() == 1
    again = index.get(env.event_id)
    assert again == first  # not even indexed_at or the audit lineage entry moved


def test_receipts_before_and_after_the_event_end_in_its_lineage(index: AuditIndex) -> None:
    env = event_at("subscription.started", T0)
    write(index, receipt(env, Sink.POSTGRES))  # before the event
    stub = index.get(env.event_id)
    assert stub is not None and stub.kind is None and set(stub.lineage) == {"postgres"}
    assert index.count() == 0  # a lineage-only document is not an event document
    assert index.search().total == 0
    write(index, doc(env))
    write(index, receipt(env, Sink.REDIS))  # after the event
    record = index.get(env.event_id)
    assert record is not None and record.kind is DocKind.EVENT
    assert set(record.lineage) == {"postgres", "redis", "audit"}
    assert {entry.status for entry in record.lineage.values()} == {"stored"}
    assert record.type == "subscription.started" and record.user_id == env.payload.user_id
    assert index.count() == 1


def test_lineage_keeps_the_first_decisive_outcome_in_any_order(index: AuditIndex) -> None:
    env = event_at("user.registered", T0, user_id="lineage-user", email="l@example.org")
    stored = receipt(env, Sink.POSTGRES, ReceiptStatus.STORED, T0 + timedelta(seconds=1))
    replayed = receipt(env, Sink.POSTGRES, ReceiptStatus.DUPLICATE, T0 + timedelta(seconds=9))
    early_dup = receipt(env, Sink.REDIS, ReceiptStatus.DUPLICATE, T0)
    rejected = receipt(env, Sink.REDIS, ReceiptStatus.REJECTED, T0 + timedelta(seconds=5),
                       reason="email taken")
    later = receipt(env, Sink.REDIS, ReceiptStatus.REJECTED, T0 + timedelta(seconds=7),
                    reason="email taken")
    write(index, replayed, early_dup, doc(env), later)
    write(index, rejected, stored)
    record = index.get(env.event_id)
    assert record is not None
    assert record.lineage["postgres"].status == "stored"
    assert record.lineage["postgres"].processed_at == T0 + timedelta(seconds=1)
    assert record.lineage["redis"].status == "rejected"
    assert record.lineage["redis"].reason == "email taken"
    assert record.lineage["redis"].processed_at == T0 + timedelta(seconds=5)


def test_payload_is_redacted_and_pseudonymised(index: AuditIndex) -> None:
    env = event_at("payment.succeeded", T0)
    write(index, doc(env))
    record = index.get(env.event_id)
    assert record is not None and record.payload is not None
    assert record.payload["card_token"] == "***"
    assert record.payload["card_last4"] == "4242"
    assert record.payment_id == env.payload.payment_id
    assert record.subscription_id == env.payload.subscription_id
    registered = event_at("user.registered", T0, email="ann@example.org")
    write(index, doc(registered))
    reg = index.get(registered.event_id)
    assert reg is not None and reg.payload is not None
    assert reg.payload["password_hash"] == "***"
    assert str(reg.payload["email"]).startswith("hmac:")


def _batch(n: int, start: datetime) -> list[Any]:
    kinds = ["rating.submitted", "playback.progress", "session.ended"]
    return [event_at(kinds[i % 3], start + timedelta(minutes=i), user_id=f"user-{i % 4}")
            for i in range(n)]


def test_search_filters_and_pages_newest_first(index: AuditIndex) -> None:
    events = _batch(25, T0)
    write(index, *(doc(env) for env in events))
    assert index.count() == 25

    page = index.search(size=10)
    assert page.total == 25 and len(page.items) == 10 and page.next_cursor
    seen = [item.doc_id for item in page.items]
    while page.next_cursor:
        page = index.search(size=10, cursor=page.next_cursor)
        seen += [item.doc_id for item in page.items]
    newest_first = [str(env.event_id) for env in sorted(events, key=lambda e: e.occurred_at,
                                                         reverse=True)]
    assert seen == newest_first

    by_user = index.search(user_id="user-1", size=100)
    assert by_user.total == sum(1 for env in events if env.payload.user_id == "user-1")
    assert {item.user_id for item in by_user.items} == {"user-1"}
    by_type = index.search(type="session.ended", size=100)
    assert by_type.total == sum(1 for env in events if env.type == "session.ended")
    window = index.search(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=10))
    assert {item.occurred_at for item in window.items} == {
        T0 + timedelta(minutes=m) for m in range(5, 10)}
    assert index.count(AuditQuery(user_id="user-1", type="rating.submitted")) == sum(
        1 for env in events if env.payload.user_id == "user-1" and env.type == "rating.submitted")
    assert index.search(user_id="nobody").total == 0


def test_free_text_matches_every_word(index: AuditIndex) -> None:
    heist = event_at("catalog.title_upserted", T0)
    other = event_at("rating.submitted", T0 + timedelta(minutes=1), stars=4)
    write(index, doc(heist), doc(other))
    # The series example: "A crew of six keeps a failing station alive."
    assert [i.doc_id for i in index.search(text="failing station").items] == [str(heist.event_id)]
    assert [i.doc_id for i in index.search(text="STATION").items] == [str(heist.event_id)]
    assert index.search(text="failing spaceship").total == 0


def test_a_bad_cursor_is_refused(index: AuditIndex) -> None:
    with pytest.raises(InvalidCursor):
        index.search(cursor="not-a-cursor")


def test_a_document_the_mapping_refuses_fails_alone(index: AuditIndex) -> None:
    good = doc(event_at("rating.submitted", T0))
    bad = EventDoc("bad-doc", bucket_of(T0), {"doc_id": "bad-doc", "kind": "event",
                                              "surprise": 1})
    failures = index.index_batch([bad, good])
    index.refresh()
    assert [(f.item, f.retryable) for f in failures] == [(bad, False)]
    assert 400 <= failures[0].status < 500
    assert index.count() == 1


def test_erasing_a_user_anonymises_their_documents_for_good(index: AuditIndex) -> None:
    mine = [event_at("rating.submitted", T0, user_id="erase-me", review="I loved it"),
            event_at("playback.started", T0 + timedelta(minutes=1), user_id="erase-me"),
            event_at("user.erased", T0 + timedelta(minutes=2), user_id="erase-me")]
    theirs = event_at("rating.submitted", T0, user_id="keep-me")
    write(index, *(doc(env) for env in [*mine, theirs]), receipt(mine[0], Sink.POSTGRES))
    assert index.erased_users(["erase-me", "keep-me"]) == set()

    assert index.erase_user("erase-me") == 3
    index.refresh()
    assert index.erased_users(["erase-me", "keep-me"]) == {"erase-me"}
    assert index.search(user_id="erase-me").total == 0
    assert index.search(text="loved").total == 0
    record = index.get(mine[0].event_id)
    assert record is not None and record.erased
    assert record.payload is None and record.user_id is None and record.key is None
    assert record.type == "rating.submitted" and "postgres" in record.lineage
    assert index.count() == 4  # anonymised, not deleted: the trail keeps what happened
    kept = index.get(theirs.event_id)
    assert kept is not None and not kept.erased and kept.payload

    # A replay cannot bring the data back, and erasing again changes nothing.
    write(index, doc(mine[0]))
    again = index.get(mine[0].event_id)
    assert again is not None and again.erased and again.payload is None
    assert index.erase_user("erase-me") == 0


def test_dead_letters_are_documents_linked_to_their_event(index: AuditIndex) -> None:
    env = event_at("rating.submitted", T0)
    headers = dead_letter_headers("store_rejected", topic="polystream.ratings", partition=2,
                                  offset=41, consumer=Sink.POSTGRES, detail="title unknown")
    rec = Record("polystream.deadletter", 0, 7, env.key.encode(), encode(env), headers,
                 int(T0.timestamp() * 1000))
    letter = dead_letter_document(rec, secret=SECRET)
    write(index, doc(env), letter, letter)
    assert index.count() == 1
    assert index.count(AuditQuery(kind=DocKind.DEAD_LETTER)) == 1
    record = index.get(env.event_id)
    assert record is not None and [d.doc_id for d in record.dead_letters] == [letter.doc_id]
    info = record.dead_letters[0].dead_letter
    assert info is not None and info.reason == "store_rejected"
    assert info.original_topic == "polystream.ratings" and info.original_offset == 41
    assert info.consumer == "postgres" and info.detail == "title unknown"
    found = index.search(kind=DocKind.DEAD_LETTER)
    assert [i.doc_id for i in found.items] == [letter.doc_id]
    assert rec.headers[DeadLetterHeader.REASON.value] == b"store_rejected"


def test_retention_deletes_whole_old_months_only(index: AuditIndex) -> None:
    now = datetime(2025, 6, 15, tzinfo=UTC)  # retention is 30 days in these fixtures
    old = event_at("rating.submitted", datetime(2025, 4, 20, tzinfo=UTC))
    border = event_at("rating.submitted", datetime(2025, 5, 20, tzinfo=UTC))
    recent = event_at("rating.submitted", datetime(2025, 6, 1, tzinfo=UTC))
    undated = event_at("rating.submitted").model_copy(update={"event_id": uuid4()})
    write(index, *(doc(env) for env in (old, border, recent, undated)))
    assert index.count() == 4
    assert index.apply_retention(now) == ["2025.04"]
    index.refresh()
    assert index.get(old.event_id) is None
    assert all(index.get(env.event_id) for env in (border, recent, undated))
    assert index.apply_retention(now) == []
    assert index.count() == 3


def test_the_audit_lineage_entry_is_written_with_the_event(index: AuditIndex) -> None:
    env = event_at("flag.set", T0, scope="user:flag-user")
    item = event_document(env, None, secret=SECRET, now=T0)
    assert item.lineage == {"audit": lineage_entry(ReceiptStatus.STORED, T0, "flag.set")}
    write(index, item)
    record = index.get(env.event_id)
    assert record is not None and record.user_id == "flag-user"
    assert record.lineage["audit"].processed_at == T0


def test_coalesced_items_have_the_effect_of_their_parts(index: AuditIndex) -> None:
    """The worker merges an event and its receipts of one batch into one write."""
    env = event_at("rating.retracted", T0)
    early = receipt(env, Sink.POSTGRES, ReceiptStatus.STORED, T0 + timedelta(seconds=1))
    dup = receipt(env, Sink.POSTGRES, ReceiptStatus.DUPLICATE, T0)
    redis = receipt(env, Sink.REDIS, ReceiptStatus.STALE, T0 + timedelta(seconds=2))
    one = coalesce(coalesce(coalesce(dup, doc(env)), early), redis)
    assert isinstance(one, EventDoc) and set(one.lineage) == {"postgres", "redis", "audit"}
    write(index, one)
    separate = event_at("rating.retracted", T0)
    write(index, *(coalesce(coalesce(dup, doc(env)), early) for _ in range(2)))
    write(index, receipt(separate, Sink.POSTGRES), receipt(separate, Sink.REDIS))
    record = index.get(env.event_id)
    assert record is not None
    assert record.lineage["postgres"].status == "stored"
    assert record.lineage["redis"].status == "stale"
    stub = index.get(separate.event_id)
    assert stub is not None and set(stub.lineage) == {"postgres", "redis"}
    both = coalesce(receipt(separate, Sink.MONGO), receipt(separate, Sink.REDIS,
                                                          ReceiptStatus.DUPLICATE))
    assert isinstance(both, LineageUpdate)
    write(index, both)
    stub = index.get(separate.event_id)
    assert stub is not None and set(stub.lineage) == {"postgres", "redis", "mongo"}
    assert stub.lineage["redis"].status == "stored"
