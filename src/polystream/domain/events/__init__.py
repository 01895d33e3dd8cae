"""The event contract: every fact polystream publishes on Kafka, as code.

The modules, in the order they build on each other:

* :mod:`.limits` (sizes), :mod:`.cards` (card-data detection: no card number or CVV may ever
  enter the system), :mod:`.types` (reusable field types and the ``x-sensitive`` /
  ``x-personal`` markers), :mod:`.vocabulary` (genres, maturity ratings, devices);
* :mod:`.payload` (the base models), then one module of payload models per family:
  :mod:`.users`, :mod:`.billing` (subscriptions, payments, plans), :mod:`.sessions`,
  :mod:`.playback`, :mod:`.ratings`, :mod:`.catalog`, :mod:`.flags`;
* :mod:`.registry` (:data:`EVENT_TYPES`: type -> payload model, family, key, consumers);
* :mod:`.envelope` (the :class:`Envelope` shared by every event), :mod:`.codec`
  (:func:`new_event`, :func:`encode`, :func:`decode`), :mod:`.privacy` (redaction and
  pseudonymisation for logs and the audit trail), :mod:`.receipts` (what a sink did).

How families map onto Kafka (topics, partitions, consumer groups, dead letters) is not part of
the contract: see :mod:`polystream.bus.topology`.

Design rules that explain most of the choices:

* Events are *facts*, so every model is frozen and closed (``extra="forbid"``): a field
  nobody declared is a producer bug, not something to carry along silently.
* Validation is the contract: a constraint that only lives in a consumer is a constraint
  that some other consumer will not enforce. Constraints only ever relax over time (for
  example "birth year not in the future"), so replaying old events never starts failing.
* Ordering comes from Kafka keys (one aggregate, one partition). Catalog titles also carry a
  ``version`` because they are edited by people and an older edit must never win; all other
  aggregates use ``occurred_at`` as their event-time guard.
* Numbers that are ids, counts or money are strict integers (``"5"`` and ``5.0`` are
  refused) and booleans are strict: lax coercion hides producer bugs.
* Each payload class knows its event type (``RatingSubmitted.event_type``, set by the
  registry): events are built from a payload (``new_event(payload, source=...)``) and
  consumers dispatch on the payload's class (``match event.payload``), never on the type
  string, so mypy checks that each handler gets the payload it expects.
"""

from polystream.domain.events.billing import (
    PLANS,
    CancellationReason,
    CardBrand,
    PaymentFailed,
    PaymentFailureReason,
    PaymentRefunded,
    PaymentSucceeded,
    Plan,
    PlanCode,
    RefundReason,
    SubscriptionCanceled,
    SubscriptionPlanChanged,
    SubscriptionRenewed,
    SubscriptionStarted,
)
from polystream.domain.events.cards import (
    contains_card_data,
    find_card_data,
    looks_like_card_number,
)
from polystream.domain.events.catalog import (
    AssetKind,
    AssetUploaded,
    CastMember,
    Episode,
    ImageType,
    People,
    RelationAdded,
    RelationKind,
    RelationRemoved,
    Season,
    TitleFields,
    TitleKind,
    TitleRemoved,
    TitleUpserted,
)
from polystream.domain.events.codec import (
    decode,
    decode_dict,
    encode,
    new_event,
    new_trace_id,
    parse_payload,
    peek_type,
)
from polystream.domain.events.envelope import (
    ENVELOPE_MODELS,
    AnyEvent,
    Envelope,
    typed_event,
)
from polystream.domain.events.flags import (
    FlagScalar,
    FlagSet,
    FlagValue,
)
from polystream.domain.events.limits import (
    MAX_ASSET_BYTES,
    MAX_EVENT_BYTES,
    MAX_FLAG_VALUE_BYTES,
    MAX_REVIEW_CHARS,
)
from polystream.domain.events.payload import (
    Payload,
)
from polystream.domain.events.playback import (
    PlaybackProgress,
    PlaybackStarted,
    PlaybackStopped,
    PlaybackStopReason,
)
from polystream.domain.events.privacy import (
    REDACTED,
    personal_paths,
    pseudonymise,
    redact,
    sensitive_paths,
)
from polystream.domain.events.ratings import (
    RatingRetracted,
    RatingSubmitted,
)
from polystream.domain.events.receipts import (
    Receipt,
    ReceiptStatus,
)
from polystream.domain.events.registry import (
    EVENT_TYPES,
    READ_AFTER,
    EventSpec,
    Family,
    Sink,
    event_types_for,
    families_for,
    spec_of,
)
from polystream.domain.events.sessions import (
    LoginMethod,
    SessionEnded,
    SessionEndReason,
    SessionLoginStarted,
    SessionRefreshed,
)
from polystream.domain.events.types import (
    EARLIEST_INSTANT,
    INSTANT_RANGE_TEXT,
    LATEST_INSTANT,
    MAX_INT64,
    MAX_VERSION,
    PERSONAL,
    SENSITIVE,
    BirthYear,
    CardToken,
    Cents,
    CountryCode,
    CurrencyCode,
    DisplayName,
    Email,
    Id,
    IpAddress,
    Language,
    Last4,
    LongText,
    Name,
    PasswordHash,
    PlainText,
    ReleaseYear,
    ReviewText,
    RuntimeMinutes,
    Seconds,
    Sha256Hex,
    TitleText,
    UtcDatetime,
    Version,
    Weight,
    control_character_problem,
)
from polystream.domain.events.users import (
    ErasureReason,
    PreferenceFields,
    PreferencesUpdated,
    ProfileChanges,
    UserErased,
    UserProfileUpdated,
    UserRegistered,
)
from polystream.domain.events.vocabulary import (
    Device,
    DeviceKind,
    Genre,
    Genres,
    Languages,
    MaturityRating,
    SomeGenres,
    SomeLanguages,
)

__all__ = [
    "EARLIEST_INSTANT",
    "ENVELOPE_MODELS",
    "EVENT_TYPES",
    "INSTANT_RANGE_TEXT",
    "LATEST_INSTANT",
    "MAX_ASSET_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_FLAG_VALUE_BYTES",
    "MAX_INT64",
    "MAX_REVIEW_CHARS",
    "MAX_VERSION",
    "PERSONAL",
    "PLANS",
    "READ_AFTER",
    "REDACTED",
    "SENSITIVE",
    "AnyEvent",
    "AssetKind",
    "AssetUploaded",
    "BirthYear",
    "CancellationReason",
    "CardBrand",
    "CardToken",
    "CastMember",
    "Cents",
    "CountryCode",
    "CurrencyCode",
    "Device",
    "DeviceKind",
    "DisplayName",
    "Email",
    "Envelope",
    "Episode",
    "ErasureReason",
    "EventSpec",
    "Family",
    "FlagScalar",
    "FlagSet",
    "FlagValue",
    "Genre",
    "Genres",
    "Id",
    "ImageType",
    "IpAddress",
    "Language",
    "Languages",
    "Last4",
    "LoginMethod",
    "LongText",
    "MaturityRating",
    "Name",
    "PasswordHash",
    "Payload",
    "PaymentFailed",
    "PaymentFailureReason",
    "PaymentRefunded",
    "PaymentSucceeded",
    "People",
    "PlainText",
    "Plan",
    "PlanCode",
    "PlaybackProgress",
    "PlaybackStarted",
    "PlaybackStopReason",
    "PlaybackStopped",
    "PreferenceFields",
    "PreferencesUpdated",
    "ProfileChanges",
    "RatingRetracted",
    "RatingSubmitted",
    "Receipt",
    "ReceiptStatus",
    "RefundReason",
    "RelationAdded",
    "RelationKind",
    "RelationRemoved",
    "ReleaseYear",
    "ReviewText",
    "RuntimeMinutes",
    "Season",
    "Seconds",
    "SessionEndReason",
    "SessionEnded",
    "SessionLoginStarted",
    "SessionRefreshed",
    "Sha256Hex",
    "Sink",
    "SomeGenres",
    "SomeLanguages",
    "SubscriptionCanceled",
    "SubscriptionPlanChanged",
    "SubscriptionRenewed",
    "SubscriptionStarted",
    "TitleFields",
    "TitleKind",
    "TitleRemoved",
    "TitleText",
    "TitleUpserted",
    "UserErased",
    "UserProfileUpdated",
    "UserRegistered",
    "UtcDatetime",
    "Version",
    "Weight",
    "contains_card_data",
    "control_character_problem",
    "decode",
    "decode_dict",
    "encode",
    "event_types_for",
    "families_for",
    "find_card_data",
    "looks_like_card_number",
    "new_event",
    "new_trace_id",
    "parse_payload",
    "peek_type",
    "personal_paths",
    "pseudonymise",
    "redact",
    "sensitive_paths",
    "spec_of",
    "typed_event",
]
