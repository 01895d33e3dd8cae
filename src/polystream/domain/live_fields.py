"""The live store's events as fields, and its stored entries back as records.

Both live stores read an event as the same list of strings (``type, event_id,
occurred_at_ms`` and then those of its type): the Lua script receives them joined, the
in-memory store indexes them the same way (``A[n]``). The entries they write (a viewing
session, a continue-watching position, a rating) share one text format, decoded here into the
read side's records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, assert_never, get_args

from polystream.domain import events as ev
from polystream.domain.events import AnyEvent
from polystream.domain.live import DAY_MS, day_name, flag_json, from_ms, scope_user, to_ms
from polystream.domain.reads import ContinueItem, ViewingSession

#: The payloads the live store acts on (the Redis sink's share of the registry).
LivePayload = (
    ev.PlaybackStarted
    | ev.PlaybackProgress
    | ev.PlaybackStopped
    | ev.RatingSubmitted
    | ev.RatingRetracted
    | ev.SubscriptionStarted
    | ev.SubscriptionPlanChanged
    | ev.SubscriptionRenewed
    | ev.SubscriptionCanceled
    | ev.SessionLoginStarted
    | ev.SessionRefreshed
    | ev.SessionEnded
    | ev.TitleUpserted
    | ev.TitleRemoved
    | ev.FlagSet
    | ev.UserErased
)

#: Their event types (a test checks them against the registry's consumers).
CONSUMED_TYPES: Final = frozenset(model.event_type for model in get_args(LivePayload))


def event_fields(event: AnyEvent) -> list[str] | None:
    """The fields the apply step reads (``type, event_id, occurred_at_ms`` and those of the
    type), or None when this sink does not consume the event."""
    payload = event.payload
    if not isinstance(payload, LivePayload):
        return None
    t = to_ms(event.occurred_at)
    fields = [event.type, str(event.event_id), str(t)]
    fields.extend(map(str, _payload_fields(payload, t)))
    return fields


def _payload_fields(p: LivePayload, t: int) -> list[Any]:
    """The script's ``A[4]`` onwards for payload ``p`` of an event that happened at ``t`` ms."""
    # Heartbeats first: three events in four.
    match p:
        case ev.PlaybackProgress():
            return _playback(p, [])
        case ev.PlaybackStarted():
            return _playback(p, [day_name(t // DAY_MS)])
        case ev.PlaybackStopped():
            return _playback(p, [p.reason.value])
        case ev.RatingSubmitted():
            return [p.user_id, p.title_id, p.stars]
        case ev.RatingRetracted():
            return [p.user_id, p.title_id, 0]
        case ev.SubscriptionStarted() | ev.SubscriptionRenewed():
            return [p.user_id, p.subscription_id, p.plan.value, to_ms(p.period_end)]
        case ev.SubscriptionPlanChanged():
            return [p.user_id, p.subscription_id, p.to_plan.value, ""]
        case ev.SubscriptionCanceled():
            return [p.user_id, p.subscription_id, "", "", to_ms(p.ends_at)]
        case ev.SessionLoginStarted() | ev.SessionRefreshed():
            return [p.user_id, p.session_id, to_ms(p.expires_at), day_name(t // DAY_MS)]
        case ev.SessionEnded():
            return [p.user_id, p.session_id, "", day_name(t // DAY_MS)]
        case ev.TitleUpserted():
            return [p.title_id, p.version, *(genre.value for genre in p.genres)]
        case ev.TitleRemoved():
            return [p.title_id, p.version]
        case ev.FlagSet():
            return [p.name, flag_json(p.value), scope_user(p.scope)]
        case ev.UserErased():
            return [p.user_id]
        case _:
            assert_never(p)


def _playback(
    p: ev.PlaybackStarted | ev.PlaybackProgress | ev.PlaybackStopped, extra: list[Any]
) -> list[Any]:
    return [
        p.viewing_session_id,
        p.user_id,
        p.title_id,
        p.episode_id or "",
        p.position_seconds,
        p.duration_seconds,
        p.device.kind.value,
        p.device.device_id,
        *extra,
    ]


# --- stored entries back as records ------------------------------------------------------


def viewing_from_hash(viewing_session_id: str, h: Mapping[str, str]) -> ViewingSession:
    return ViewingSession(
        viewing_session_id=viewing_session_id,
        user_id=h["user"],
        title_id=h["title"],
        episode_id=h.get("episode") or None,
        position_seconds=int(h["position"]),
        duration_seconds=int(h["duration"]),
        device_kind=h["device_kind"],
        device_id=h["device_id"],
        state=h["state"],
        stop_reason=h.get("reason") or None,
        started_at=from_ms(int(h["started"])),
        last_event_at=from_ms(int(h["t"])),
    )


def continue_item(title_id: str, entry: str | None) -> ContinueItem | None:
    """A position ``t|eid|position|duration|episode|vs``; None for ``t|eid|done``."""
    if entry is None:
        return None
    parts = entry.split("|")
    if len(parts) != 6:
        return None  # a "finished" tombstone
    t, _eid, position, duration, episode, viewing = parts
    return ContinueItem(
        title_id=title_id,
        episode_id=episode or None,
        position_seconds=int(position),
        duration_seconds=int(duration),
        viewing_session_id=viewing,
        updated_at=from_ms(int(t)),
    )


def continue_items(titles: Sequence[str], entries: Sequence[str | None]) -> list[ContinueItem]:
    """The continue-watching rows of ``titles`` still open (finished ones are tombstones)."""
    items = (continue_item(title, entry) for title, entry in zip(titles, entries, strict=True))
    return [item for item in items if item is not None]


def stars_of(entry: str | None) -> int | None:
    """The stars of a user's rating entry ``stars|t|eid`` (None: none, or retracted)."""
    if entry is None:
        return None
    stars = int(entry.split("|", 1)[0])
    return stars or None


__all__ = [
    "CONSUMED_TYPES",
    "LivePayload",
    "continue_item",
    "continue_items",
    "event_fields",
    "stars_of",
    "viewing_from_hash",
]
