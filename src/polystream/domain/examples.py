"""One valid example per event type, for tests, docs and the simulator.

Every factory takes keyword overrides, so a test states only what it is about::

    example_event(RatingSubmitted, stars=5)
    example_payload(PlaybackProgress, position_seconds=120)

(an event type's name works too, ``example_event("rating.submitted")``, for tests that go
through every registered type).

Examples are deterministic (fixed ids and times) except ``event_id`` and ``trace_id``,
which :func:`~polystream.domain.events.new_event` always makes fresh.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from base64 import b64encode
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, overload

from polystream.domain import events as ev
from polystream.domain.events import EVENT_TYPES, AnyEvent, Envelope, ImageType, Payload, new_event
from polystream.domain.events.payload import P

#: The instant every example happens at, unless overridden.
EXAMPLE_TIME: Final = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

#: An argon2id hash of "correct horse battery staple" (argon2-cffi defaults, fixed salt).
EXAMPLE_PASSWORD_HASH: Final = (
    "$argon2id$v=19$m=65536,t=3,p=4$cG9seXN0cmVhbS1zYWx0IQ"
    "$cz/SR7He5L8tSTcH5Uy2SBw4YJn1P2kwHHv1pKZGr14"
)

USER_ID: Final = "0194a1b2-0000-7000-8000-000000000001"
TITLE_ID: Final = "0194a1b2-0000-7000-8000-0000000000a1"
OTHER_TITLE_ID: Final = "0194a1b2-0000-7000-8000-0000000000a2"
SUBSCRIPTION_ID: Final = "0194a1b2-0000-7000-8000-0000000000b1"
PAYMENT_ID: Final = "0194a1b2-0000-7000-8000-0000000000c1"
SESSION_ID: Final = "0194a1b2-0000-7000-8000-0000000000d1"
VIEWING_SESSION_ID: Final = "0194a1b2-0000-7000-8000-0000000000e1"


def png_image(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid, solid-colour PNG, built without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def image_asset(
    data: bytes,
    *,
    asset_id: str = "0194a1b2-0000-7000-8000-0000000000f1",
    title_id: str = TITLE_ID,
    kind: str = "poster",
    content_type: ImageType | str = ImageType.PNG,
) -> ev.AssetUploaded:
    """An ``AssetUploaded`` payload for ``data``, with size and checksum computed."""
    return ev.AssetUploaded.model_validate(
        {
            "asset_id": asset_id,
            "title_id": title_id,
            "kind": kind,
            "content_type": content_type,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "data_base64": b64encode(data).decode("ascii"),
        }
    )


def _device() -> dict[str, Any]:
    return {"kind": "tv", "device_id": "living-room-tv-01"}


def _card_payment() -> dict[str, Any]:
    return {
        "payment_id": PAYMENT_ID,
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "amount_cents": 1299,
        "currency": "EUR",
        "card_token": "tok_9fQz3LmXw2Rb7TyK",
        "card_brand": "visa",
        "card_last4": "4242",
    }


def _playback() -> dict[str, Any]:
    return {
        "viewing_session_id": VIEWING_SESSION_ID,
        "user_id": USER_ID,
        "title_id": TITLE_ID,
        "episode_id": "s01e01-0194a1b2",
        "position_seconds": 600,
        "duration_seconds": 3300,
        "device": _device(),
    }


def _series() -> dict[str, Any]:
    return {
        "title_id": TITLE_ID,
        "kind": "series",
        "version": 3,
        "title": "The Long Orbit",
        "original_title": "L'Orbite longue",
        "synopsis": "A crew of six keeps a failing station alive.",
        "year": 2021,
        "genres": ["science_fiction", "drama"],
        "people": {
            "directors": ["Ines Marchand"],
            "cast": [
                {"name": "Tomás Rivera", "character": "Commander Ode"},
                {"name": "Aiko Tanaka", "character": "Dr. Sen"},
            ],
        },
        "languages": ["fr", "en"],
        "subtitle_languages": ["en", "es-419", "pt-BR"],
        "maturity_rating": "13+",
        "seasons": [
            {
                "number": 1,
                "title": "Decay",
                "episodes": [
                    {
                        "episode_id": "s01e01-0194a1b2",
                        "number": 1,
                        "title": "Burn",
                        "runtime_minutes": 55,
                    },
                    {
                        "episode_id": "s01e02-0194a1b2",
                        "number": 2,
                        "title": "Drift",
                        "runtime_minutes": 52,
                    },
                ],
            },
            {
                "number": 2,
                "episodes": [
                    {
                        "episode_id": "s02e01-0194a1b2",
                        "number": 1,
                        "title": "Return",
                        "runtime_minutes": 58,
                        "synopsis": "Help arrives, late.",
                    }
                ],
            },
        ],
    }


def _movie() -> dict[str, Any]:
    return {
        "title_id": OTHER_TITLE_ID,
        "kind": "movie",
        "version": 1,
        "title": "Quiet Harbour",
        "year": 1998,
        "genres": ["drama", "mystery"],
        "people": {"directors": ["Ines Marchand"], "cast": [{"name": "Lena Vogt"}]},
        "languages": ["de"],
        "maturity_rating": "16+",
        "runtime_minutes": 104,
    }


_EXAMPLE_PNG: Final = png_image()

_FIELDS: Final[dict[type[Payload], Callable[[], dict[str, Any]]]] = {
    ev.UserRegistered: lambda: {
        "user_id": USER_ID,
        "email": "ana.silva@example.com",
        "display_name": "Ana",
        "country": "PT",
        "birth_year": 1990,
        "password_hash": EXAMPLE_PASSWORD_HASH,
    },
    ev.UserProfileUpdated: lambda: {"user_id": USER_ID, "display_name": "Ana S.", "country": "ES"},
    ev.UserErased: lambda: {"user_id": USER_ID, "reason": "user_request"},
    ev.PreferencesUpdated: lambda: {
        "user_id": USER_ID,
        "genres": ["drama", "science_fiction"],
        "languages": ["pt-BR", "en"],
        "subtitles": True,
        "subtitle_language": "pt-BR",
        "autoplay_next_episode": True,
        "autoplay_previews": False,
        "maturity_limit": "18+",
    },
    ev.SubscriptionStarted: lambda: {
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "plan": "standard",
        "period_start": EXAMPLE_TIME,
        "period_end": EXAMPLE_TIME + timedelta(days=31),
    },
    ev.SubscriptionPlanChanged: lambda: {
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "from_plan": "standard",
        "to_plan": "premium",
    },
    ev.SubscriptionRenewed: lambda: {
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "plan": "premium",
        "period_start": EXAMPLE_TIME + timedelta(days=31),
        "period_end": EXAMPLE_TIME + timedelta(days=59),
        "payment_id": PAYMENT_ID,
    },
    ev.SubscriptionCanceled: lambda: {
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "reason": "user_request",
        "ends_at": EXAMPLE_TIME + timedelta(days=59),
    },
    ev.PaymentSucceeded: _card_payment,
    ev.PaymentFailed: lambda: {**_card_payment(), "failure_reason": "insufficient_funds"},
    ev.PaymentRefunded: lambda: {
        "payment_id": PAYMENT_ID,
        "refund_id": "0194a1b2-0000-7000-8000-0000000000c2",
        "subscription_id": SUBSCRIPTION_ID,
        "user_id": USER_ID,
        "amount_cents": 1299,
        "currency": "EUR",
        "reason": "requested_by_customer",
    },
    ev.SessionLoginStarted: lambda: {
        "session_id": SESSION_ID,
        "user_id": USER_ID,
        "method": "password",
        "device": _device(),
        "ip_address": "203.0.113.7",
        "user_agent": "PolystreamTV/4.2 (Linux; Android 12)",
        "expires_at": EXAMPLE_TIME + timedelta(hours=12),
    },
    ev.SessionRefreshed: lambda: {
        "session_id": SESSION_ID,
        "user_id": USER_ID,
        "ip_address": "2001:db8::7",
        "expires_at": EXAMPLE_TIME + timedelta(hours=13),
    },
    ev.SessionEnded: lambda: {"session_id": SESSION_ID, "user_id": USER_ID, "reason": "logout"},
    ev.PlaybackStarted: lambda: {**_playback(), "position_seconds": 0},
    ev.PlaybackProgress: _playback,
    ev.PlaybackStopped: lambda: {**_playback(), "position_seconds": 1800, "reason": "user"},
    ev.RatingSubmitted: lambda: {
        "user_id": USER_ID,
        "title_id": TITLE_ID,
        "stars": 4,
        "review": "Slow start, stunning second season.",
    },
    ev.RatingRetracted: lambda: {"user_id": USER_ID, "title_id": TITLE_ID},
    ev.TitleUpserted: _series,
    ev.TitleRemoved: lambda: {"title_id": TITLE_ID, "version": 4},
    ev.RelationAdded: lambda: {
        "from_title_id": TITLE_ID,
        "to_title_id": OTHER_TITLE_ID,
        "kind": "same_director",
        "weight": 0.8,
    },
    ev.RelationRemoved: lambda: {
        "from_title_id": TITLE_ID,
        "to_title_id": OTHER_TITLE_ID,
        "kind": "same_director",
    },
    ev.AssetUploaded: lambda: image_asset(_EXAMPLE_PNG).model_dump(),
    ev.FlagSet: lambda: {
        "name": "player.next-episode-countdown",
        "value": {"enabled": True, "seconds": 10},
        "scope": "global",
    },
}


def _model(event_type: type[Payload] | str) -> type[Payload]:
    return EVENT_TYPES[event_type].payload_model if isinstance(event_type, str) else event_type


def example_fields(event_type: type[Payload] | str, /) -> dict[str, Any]:
    """The example payload of a payload class (or event type name) as a fresh, mutable dict
    (Python values)."""
    return _FIELDS[_model(event_type)]()


@overload
def example_payload(event_type: type[P], /, **overrides: Any) -> P: ...
@overload
def example_payload(event_type: str, /, **overrides: Any) -> Payload: ...
def example_payload(event_type: type[Payload] | str, /, **overrides: Any) -> Payload:
    """A valid payload of a payload class (or event type name); ``overrides`` replace
    top-level fields."""
    model = _model(event_type)
    return model.model_validate({**_FIELDS[model](), **overrides})


def movie_title(**overrides: Any) -> ev.TitleUpserted:
    """A valid ``TitleUpserted`` payload for a movie (the default example is a series)."""
    return ev.TitleUpserted.model_validate({**_movie(), **overrides})


@overload
def example_event(
    event_type: type[P],
    /,
    *,
    source: str = ...,
    occurred_at: datetime = ...,
    trace_id: str | None = ...,
    **overrides: Any,
) -> Envelope[P]: ...
@overload
def example_event(
    event_type: str,
    /,
    *,
    source: str = ...,
    occurred_at: datetime = ...,
    trace_id: str | None = ...,
    **overrides: Any,
) -> AnyEvent: ...
def example_event(
    event_type: type[Payload] | str,
    /,
    *,
    source: str = "examples",
    occurred_at: datetime = EXAMPLE_TIME,
    trace_id: str | None = None,
    **overrides: Any,
) -> AnyEvent:
    """A valid event around :func:`example_payload`."""
    return new_event(
        example_payload(event_type, **overrides),
        source=source,
        trace_id=trace_id,
        occurred_at=occurred_at,
    )


def example_events() -> list[AnyEvent]:
    """One example event per registered type, in registry order."""
    return [example_event(spec.payload_model) for spec in EVENT_TYPES.values()]


__all__ = [
    "EXAMPLE_PASSWORD_HASH",
    "EXAMPLE_TIME",
    "example_event",
    "example_events",
    "example_fields",
    "example_payload",
    "image_asset",
    "movie_title",
    "png_image",
]
