"""The stream is internally consistent and realistic: what the stores will be asked to apply
could all have happened, in that order."""

from __future__ import annotations

import base64
import hashlib
import statistics
import struct
import zlib
from collections import Counter, defaultdict
from typing import Any

import pytest

from polystream.domain.events import AssetUploaded, Envelope
from polystream.simulate import SimEvent

from .invariants import StreamModel


@pytest.mark.parametrize("run", ["default_envelopes", "busy_envelopes"])
def test_every_event_could_have_happened(run: str, request: pytest.FixtureRequest) -> None:
    envelopes: list[Envelope[Any]] = request.getfixturevalue(run)
    model = StreamModel()
    for envelope in envelopes:
        model.apply(envelope)
    assert model.counts["playback.started"] > 1000


def test_per_key_order_is_non_decreasing_in_time(default_envelopes: list[Envelope[Any]]) -> None:
    last: dict[str, Any] = {}
    for envelope in default_envelopes:
        assert envelope.occurred_at >= last.get(envelope.key, envelope.occurred_at)
        last[envelope.key] = envelope.occurred_at


def test_every_payment_references_a_subscription_started_earlier_for_that_user(
    busy_envelopes: list[Envelope[Any]],
) -> None:
    started: dict[str, str] = {}
    payments = 0
    for envelope in busy_envelopes:
        p = envelope.payload
        if envelope.type == "subscription.started":
            started[p.subscription_id] = p.user_id
        elif envelope.type.startswith("payment."):
            assert started.get(p.subscription_id) == p.user_id
            payments += 1
    assert payments > 100


def test_playback_only_for_known_titles_and_registered_users(
    default_envelopes: list[Envelope[Any]],
) -> None:
    titles: set[str] = set()
    users: set[str] = set()
    for envelope in default_envelopes:
        p = envelope.payload
        if envelope.type == "catalog.title_upserted":
            titles.add(p.title_id)
        elif envelope.type == "user.registered":
            users.add(p.user_id)
        elif envelope.type.startswith(("playback.", "rating.")):
            assert p.title_id in titles and p.user_id in users


def test_ratings_follow_zipf_popularity(default_envelopes: list[Envelope[Any]]) -> None:
    per_title = Counter(
        e.payload.title_id for e in default_envelopes if e.type == "rating.submitted"
    )
    titles = [e.payload.title_id for e in default_envelopes if e.type == "catalog.title_upserted"]
    counts = sorted((per_title.get(t, 0) for t in set(titles)), reverse=True)
    median = statistics.median(counts)
    assert counts[0] >= max(10, 8 * median), (counts[:10], median)
    # Heavy head: the top 10% of titles get a large share of all ratings.
    head = sum(counts[: len(counts) // 10])
    assert head >= 0.4 * sum(counts)
    stars = Counter(e.payload.stars for e in default_envelopes if e.type == "rating.submitted")
    assert set(stars) == {1, 2, 3, 4, 5}


def test_ratings_follow_user_taste(busy_envelopes: list[Envelope[Any]]) -> None:
    genres_of: dict[str, set[str]] = {}
    favourites: dict[str, set[str]] = {}
    liked: list[int] = []
    other: list[int] = []
    for envelope in busy_envelopes:
        p = envelope.payload
        if envelope.type == "catalog.title_upserted":
            genres_of[p.title_id] = {g.value for g in p.genres}
        elif envelope.type == "preferences.updated":
            favourites[p.user_id] = {g.value for g in p.genres}
        elif envelope.type == "rating.submitted" and p.user_id in favourites:
            bucket = liked if genres_of[p.title_id] & favourites[p.user_id] else other
            bucket.append(p.stars)
    assert len(liked) > 100 and len(other) > 100
    assert statistics.mean(liked) > statistics.mean(other) + 0.2


def test_payment_failures_are_a_realistic_share_and_are_retried(
    default_envelopes: list[Envelope[Any]],
) -> None:
    counts = Counter(e.type for e in default_envelopes)
    attempts = counts["payment.succeeded"] + counts["payment.failed"]
    assert attempts > 100
    assert 0.03 <= counts["payment.failed"] / attempts <= 0.12
    assert counts["subscription.renewed"] > 10  # migrated customers renew from day one
    failed = [e.payload.subscription_id for e in default_envelopes if e.type == "payment.failed"]
    retried = {
        e.payload.subscription_id
        for e in default_envelopes
        if e.type.startswith("payment.") and e.payload.subscription_id in set(failed)
    }
    assert any(
        sum(1 for e in default_envelopes
            if e.type.startswith("payment.") and e.payload.subscription_id == sub) > 1
        for sub in retried
    )  # fmt: skip


def test_the_stream_limit_is_mostly_respected(busy_envelopes: list[Envelope[Any]]) -> None:
    model = StreamModel()
    for envelope in busy_envelopes:
        model.apply(envelope)
    starts = model.counts["playback.started"]
    limited = sum(
        1 for e in busy_envelopes
        if e.type == "playback.stopped" and e.payload.reason.value == "stream_limit"
    )  # fmt: skip
    assert 0 < model.over_limit_starts == limited
    assert limited / starts < 0.1


def test_catalogue_versions_increase_and_series_grow(busy_envelopes: list[Envelope[Any]]) -> None:
    versions: dict[str, list[int]] = defaultdict(list)
    for envelope in busy_envelopes:
        if envelope.type in ("catalog.title_upserted", "catalog.title_removed"):
            versions[envelope.payload.title_id].append(envelope.payload.version)
    assert any(len(v) > 1 for v in versions.values())
    for history in versions.values():
        assert history == sorted(set(history))


def test_posters_are_real_pngs_of_a_few_kib(default_run: list[SimEvent]) -> None:
    from polystream.domain.events import decode

    sizes = []
    for event in default_run:
        if event.type != "catalog.asset_uploaded":
            continue
        payload = decode(event.value).payload
        assert isinstance(payload, AssetUploaded)
        data = base64.b64decode(payload.data_base64)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])
        # Decompress the pixels: a truncated or corrupt stream raises here.
        idat_length = struct.unpack(">I", data[33:37])[0]
        raw = zlib.decompress(data[41 : 41 + idat_length])
        assert len(raw) == height * (1 + 3 * width)
        assert hashlib.sha256(data).hexdigest() == payload.sha256
        sizes.append(len(data))
    assert sizes and min(sizes) >= 1024 and max(sizes) <= 16 * 1024
    assert len(set(sizes)) > len(sizes) // 2  # images differ


def test_sessions_expire_or_end_and_are_refreshed(default_envelopes: list[Envelope[Any]]) -> None:
    reasons = Counter(
        e.payload.reason.value for e in default_envelopes if e.type == "session.ended"
    )
    assert reasons["logout"] > 0 and reasons["expired"] > 0
    assert sum(1 for e in default_envelopes if e.type == "session.refreshed") > 100


def test_the_referee_catches_inconsistent_streams(busy_envelopes: list[Envelope[Any]]) -> None:
    from .invariants import Inconsistent

    def first(event_type: str) -> int:
        return next(i for i, e in enumerate(busy_envelopes) if e.type == event_type)

    broken = [
        # a payment whose subscription never started
        [e for i, e in enumerate(busy_envelopes) if i != first("subscription.started")],
        # playback before the title exists
        [e for e in busy_envelopes if e.type != "catalog.title_upserted"],
        # a viewing stopped twice
        [
            *busy_envelopes[: first("playback.stopped") + 1],
            busy_envelopes[first("playback.stopped")],
        ],
    ]
    for stream in broken:
        model = StreamModel()
        with pytest.raises(Inconsistent):
            for envelope in stream:
                model.apply(envelope)
