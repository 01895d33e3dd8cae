"""The registry: every event type, its payload model, family, key and consumers.

An event type belongs to one aggregate *family* (users, subscriptions, ...): the events of a
family share one ordering stream on the bus, keyed by the aggregate id named here. Which Kafka
topic carries a family is the bus's business (:mod:`polystream.bus.topology`); which stores
consume an event type is the contract's, because it is the data placement of the design (which
store owns which data).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, cast

from polystream.domain.errors import UnknownEventType
from polystream.domain.events.billing import (
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    SubscriptionCanceled,
    SubscriptionPlanChanged,
    SubscriptionRenewed,
    SubscriptionStarted,
)
from polystream.domain.events.catalog import (
    AssetUploaded,
    RelationAdded,
    RelationRemoved,
    TitleRemoved,
    TitleUpserted,
)
from polystream.domain.events.flags import FlagSet
from polystream.domain.events.payload import Payload
from polystream.domain.events.playback import PlaybackProgress, PlaybackStarted, PlaybackStopped
from polystream.domain.events.ratings import RatingRetracted, RatingSubmitted
from polystream.domain.events.sessions import SessionEnded, SessionLoginStarted, SessionRefreshed
from polystream.domain.events.upcasting import CURRENT_VERSIONS
from polystream.domain.events.users import (
    PreferencesUpdated,
    UserErased,
    UserProfileUpdated,
    UserRegistered,
)


class Family(StrEnum):
    """Aggregate families: the events of one family are ordered together, per key."""

    USERS = "users"
    SUBSCRIPTIONS = "subscriptions"
    SESSIONS = "sessions"
    PLAYBACK = "playback"
    RATINGS = "ratings"
    CATALOG = "catalog"
    FLAGS = "flags"


class Sink(StrEnum):
    """The consumers. Each one is its own Kafka consumer group with its own offsets."""

    POSTGRES = "postgres"
    MONGO = "mongo"
    REDIS = "redis"
    AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything the system knows about one event type."""

    type: str
    schema_version: int
    # builtins.type: the ``type`` field above shadows the builtin in this class body.
    payload_model: builtins.type[Payload]
    family: Family
    #: Payload field whose value is the Kafka key (and the envelope's ``key``).
    key_field: str
    #: Sinks that consume it, in :class:`Sink` order; the audit consumes everything.
    consumers: tuple[Sink, ...]

    @property
    def description(self) -> str:
        return (self.payload_model.__doc__ or "").strip().splitlines()[0]

    def key_of(self, payload: Payload) -> str:
        return cast(str, getattr(payload, self.key_field))


def _spec(
    event_type: str,
    payload_model: type[Payload],
    family: Family,
    key_field: str,
    consumers: Iterable[Sink],
    schema_version: int = 1,
) -> EventSpec:
    if key_field not in payload_model.model_fields:
        raise TypeError(f"{payload_model.__name__} has no key field {key_field!r}")
    if "event_type" in vars(payload_model):
        raise TypeError(f"{payload_model.__name__} is registered twice")
    payload_model.event_type = event_type
    return EventSpec(
        type=event_type,
        schema_version=schema_version,
        payload_model=payload_model,
        family=family,
        key_field=key_field,
        consumers=tuple(sink for sink in Sink if sink in {*consumers, Sink.AUDIT}),
    )


_PG, _MONGO, _REDIS = Sink.POSTGRES, Sink.MONGO, Sink.REDIS

# Keys, and why:
# * users, subscriptions, payments, sessions, playback and ratings are keyed by user_id.
#   Billing for one user (a renewal, its payment, a refund) stays in order; the Redis
#   concurrent-stream count sees a user's starts and stops in order; a rating and its
#   retraction arrive in order. user_id also spreads load evenly, unlike title_id for hot
#   titles.
# * catalog events are keyed by title_id, and relations by from_title_id, so a title's
#   edges live on the same partition as the title.
# * flags by name.
# (type, payload model, key field, consumers besides the audit), grouped by family.
_REGISTRY: Final[dict[Family, tuple[tuple[str, type[Payload], str, tuple[Sink, ...]], ...]]] = {
    Family.USERS: (
        ("user.registered", UserRegistered, "user_id", (_PG,)),
        ("user.profile_updated", UserProfileUpdated, "user_id", (_PG,)),
        ("user.erased", UserErased, "user_id", (_PG, _REDIS)),
        ("preferences.updated", PreferencesUpdated, "user_id", (_PG,)),
    ),
    Family.SUBSCRIPTIONS: (
        ("subscription.started", SubscriptionStarted, "user_id", (_PG, _REDIS)),
        ("subscription.plan_changed", SubscriptionPlanChanged, "user_id", (_PG, _REDIS)),
        ("subscription.renewed", SubscriptionRenewed, "user_id", (_PG, _REDIS)),
        ("subscription.canceled", SubscriptionCanceled, "user_id", (_PG, _REDIS)),
        ("payment.succeeded", PaymentSucceeded, "user_id", (_PG,)),
        ("payment.failed", PaymentFailed, "user_id", (_PG,)),
        ("payment.refunded", PaymentRefunded, "user_id", (_PG,)),
    ),
    Family.SESSIONS: (
        ("session.login_started", SessionLoginStarted, "user_id", (_REDIS,)),
        ("session.refreshed", SessionRefreshed, "user_id", (_REDIS,)),
        ("session.ended", SessionEnded, "user_id", (_REDIS,)),
    ),
    Family.PLAYBACK: (
        ("playback.started", PlaybackStarted, "user_id", (_REDIS,)),
        ("playback.progress", PlaybackProgress, "user_id", (_REDIS,)),
        ("playback.stopped", PlaybackStopped, "user_id", (_REDIS,)),
    ),
    Family.RATINGS: (
        ("rating.submitted", RatingSubmitted, "user_id", (_PG, _REDIS)),
        ("rating.retracted", RatingRetracted, "user_id", (_PG, _REDIS)),
    ),
    Family.CATALOG: (
        ("catalog.title_upserted", TitleUpserted, "title_id", (_MONGO, _REDIS)),
        ("catalog.title_removed", TitleRemoved, "title_id", (_MONGO, _REDIS)),
        ("catalog.relation_added", RelationAdded, "from_title_id", (_MONGO,)),
        ("catalog.relation_removed", RelationRemoved, "from_title_id", (_MONGO,)),
        ("catalog.asset_uploaded", AssetUploaded, "title_id", (_MONGO,)),
    ),
    Family.FLAGS: (("flag.set", FlagSet, "name", (_REDIS,)),),
}

#: Every event type this build can produce and read.
EVENT_TYPES: Final[dict[str, EventSpec]] = {
    event_type: _spec(event_type, model, family, key, consumers,
                      CURRENT_VERSIONS.get(event_type, 1))
    for family, rows in _REGISTRY.items()
    for event_type, model, key, consumers in rows
}


def spec_of(payload_model: type[Payload]) -> EventSpec:
    """The spec of a payload class. Raises :class:`UnknownEventType` for a class that is not
    registered (a shared base such as ``Payload`` itself)."""
    spec = EVENT_TYPES.get(vars(payload_model).get("event_type", ""))
    if spec is None or spec.payload_model is not payload_model:
        raise UnknownEventType(f"{payload_model.__name__} is not the payload of an event type")
    return spec


def event_types_for(sink: Sink) -> tuple[str, ...]:
    """The event types a sink consumes, in registry order."""
    return tuple(t for t, spec in EVENT_TYPES.items() if sink in spec.consumers)


#: Cross-family prerequisites: the families whose events a family's events may need applied
#: first (a subscription needs its user; a rating its user; a playback start an active
#: subscription). Nothing orders events across families, so a sink defers such an event until
#: it has read these families past it (`polystream.runtime.progress`). They are keyed alike
#: (by user id), so the prerequisite is in a known partition; acyclic, so waiting always ends.
READ_AFTER: Final[Mapping[Family, tuple[Family, ...]]] = MappingProxyType({
    Family.SUBSCRIPTIONS: (Family.USERS,),
    Family.RATINGS: (Family.USERS,),
    Family.PLAYBACK: (Family.SUBSCRIPTIONS,),
})


def families_for(sink: Sink) -> tuple[Family, ...]:
    """The families of the event types a sink consumes, in :class:`Family` order."""
    families = {EVENT_TYPES[t].family for t in event_types_for(sink)}
    return tuple(family for family in Family if family in families)


__all__ = [
    "EVENT_TYPES",
    "READ_AFTER",
    "EventSpec",
    "Family",
    "Sink",
    "event_types_for",
    "families_for",
    "spec_of",
]
