"""The event contract: every fact polystream publishes on Kafka, as code.

Read this module top to bottom:

1. limits, topics and sinks (who reads what);
2. card-data detection (no card number or CVV may ever enter the system);
3. reusable field types (ids, emails, countries, ...) and the ``x-sensitive`` /
   ``x-personal`` markers;
4. the :class:`Envelope` shared by every event;
5. one payload model per event type, grouped by family;
6. the registry :data:`EVENT_TYPES` (type -> topic, key, consumers, payload model);
7. the codec: :func:`new_event`, :func:`encode`, :func:`decode`;
8. redaction and pseudonymisation for logs and the audit trail.

Design rules that explain most of the choices below:

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
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, Final, Generic, Self, TypeVar, cast
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails
from uuid6 import uuid7

from polystream.domain.errors import (
    EventValidationError,
    FieldError,
    InvalidEvent,
    MalformedEvent,
    OversizedEvent,
    UnknownEventType,
    UnsupportedSchemaVersion,
)

# ---------------------------------------------------------------------------------------
# 1. Limits, topics, sinks
# ---------------------------------------------------------------------------------------

#: Largest encoded event, in bytes. Kafka's default ``message.max.bytes`` is 1 MiB plus a
#: little record overhead, so anything larger would be refused by the broker anyway; refusing
#: it here gives a precise reason instead of a producer error.
MAX_EVENT_BYTES: Final = 1024 * 1024

#: Largest image carried by ``catalog.asset_uploaded``. Base64 inflates by 4/3, so 512 KiB
#: becomes ~683 KiB of JSON and still fits under :data:`MAX_EVENT_BYTES` with the envelope.
MAX_ASSET_BYTES: Final = 512 * 1024

#: Reviews are read on a title page, not essays; the bound keeps rating events small.
MAX_REVIEW_CHARS: Final = 2000

#: Encoded size bound of a flag value, so flags stay "small variables", not documents.
MAX_FLAG_VALUE_BYTES: Final = 4096


class Topic(StrEnum):
    """Kafka topics: one per aggregate family, plus dead letters and sink receipts."""

    USERS = "polystream.users"
    SUBSCRIPTIONS = "polystream.subscriptions"
    SESSIONS = "polystream.sessions"
    PLAYBACK = "polystream.playback"
    RATINGS = "polystream.ratings"
    CATALOG = "polystream.catalog"
    FLAGS = "polystream.flags"
    DEADLETTER = "polystream.deadletter"
    RECEIPTS = "polystream.receipts"


#: Partitions per topic. Playback heartbeats are by far the busiest stream, so it gets the
#: most; flags change rarely. Partitions bound the parallelism of a sink (one consumer per
#: partition per group), so these are also the maximum worker counts per sink.
TOPIC_PARTITIONS: Final[Mapping[Topic, int]] = MappingProxyType(
    {
        Topic.USERS: 6,
        Topic.SUBSCRIPTIONS: 6,
        Topic.SESSIONS: 6,
        Topic.PLAYBACK: 12,
        Topic.RATINGS: 6,
        Topic.CATALOG: 6,
        Topic.FLAGS: 3,
        Topic.DEADLETTER: 3,
        Topic.RECEIPTS: 6,
    }
)


class Sink(StrEnum):
    """The consumers. Each one is its own Kafka consumer group with its own offsets."""

    POSTGRES = "postgres"
    MONGO = "mongo"
    REDIS = "redis"
    AUDIT = "audit"


#: Consumer group of each sink. One group per store is deliberate: a slow store delays only
#: its own sink, and each sink can be replayed on its own.
CONSUMER_GROUPS: Final[Mapping[Sink, str]] = MappingProxyType(
    {sink: f"polystream-{sink.value}" for sink in Sink}
)


class DeadLetterHeader(StrEnum):
    """Kafka headers on every dead-letter record (the value is the original bytes)."""

    REASON = "dlq.reason"  #: an :class:`InvalidEvent` ``code`` or ``store_rejected``
    DETAIL = "dlq.detail"  #: the human reason, never containing field values
    TOPIC = "dlq.original.topic"
    PARTITION = "dlq.original.partition"
    OFFSET = "dlq.original.offset"
    CONSUMER = "dlq.consumer"  #: the sink that gave up on it
    EVENT_TYPE = "dlq.event.type"  #: when it could be read


# ---------------------------------------------------------------------------------------
# 2. Card data: refused at the door, and never accepted inside any event
# ---------------------------------------------------------------------------------------

# 13 to 19 digits, optionally separated by single spaces or dashes ("4111 1111 1111 1111").
_CARD_NUMBER = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")
# The same inside free text. Neighbouring letters or digits mean it is part of a longer token
# (an id, a hash, base64), not a number someone typed.
_CARD_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")
_SEPARATORS = re.compile(r"[ -]")
# UUIDs are everywhere in requests, and the digit groups of some of them would pass Luhn.
_UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Key names that only ever mean card data. Compared after lower-casing and dropping
# everything but letters and digits, so "Card-Number", "card_number" and "cardNumber" match.
_CARD_KEYS: Final = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "csc",
        "securitycode",
        "cardsecuritycode",
        "pan",
        "cardnumber",
        "cardno",
        "ccnumber",
        "creditcardnumber",
        "debitcardnumber",
        "primaryaccountnumber",
    }
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True if ``text`` as a whole is a 13-19 digit, Luhn-valid number (spaces/dashes allowed).

    Luhn is what tells a card number from a long id or a phone number: only one random
    digit string in ten passes it.
    """
    if len(text) > 37 or not _CARD_NUMBER.fullmatch(text):
        return False
    return _luhn_valid(_SEPARATORS.sub("", text))


def _text_has_card_number(text: str) -> bool:
    if len(text) < 13 or _UUID_SHAPE.fullmatch(text):
        return False
    # A UUID inside longer text ("01942172-2559-7075-a1e7-…") starts with digit groups that
    # can pass for a dashed card number; ids are not card data.
    text = _UUID_SHAPE.sub(" ", text)
    return any(
        _luhn_valid(_SEPARATORS.sub("", match.group()))
        for match in _CARD_NUMBER_IN_TEXT.finditer(text)
    )


def _normalise_key(key: str) -> str:
    return "".join(char for char in key.lower() if char.isalnum())


def find_card_data(obj: object) -> list[str]:
    """JSON paths (``$.card.number``) in a JSON-like structure that hold card data.

    Card data is a key that names a card number or security code (whatever its value), or a
    string or integer that is or contains a Luhn-valid 13-19 digit number. The values are
    not returned, so the result can be logged.
    """
    found: list[str] = []
    # Iterative on purpose: request bodies are attacker-controlled and could nest deeply.
    stack: list[tuple[str, object]] = [("$", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                child = f"{path}.{key}"
                if isinstance(key, str) and (
                    _normalise_key(key) in _CARD_KEYS or _text_has_card_number(key)
                ):
                    found.append(child)
                stack.append((child, item))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            if _text_has_card_number(value):
                found.append(path)
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and looks_like_card_number(str(abs(value)))
        ):
            found.append(path)
    return sorted(found)


def contains_card_data(obj: object) -> bool:
    """True if :func:`find_card_data` finds anything. The API refuses such requests."""
    return bool(find_card_data(obj))


# ---------------------------------------------------------------------------------------
# 3. Field types and markers
# ---------------------------------------------------------------------------------------

#: Schema marker: the value is a secret (hash, token). :func:`redact` replaces it with
#: ``"***"`` and it never reaches logs or the audit index.
SENSITIVE: Final[dict[str, Any]] = {"x-sensitive": True}
#: Schema marker: the value identifies a person. The audit keeps it pseudonymised only.
PERSONAL: Final[dict[str, Any]] = {"x-personal": True}

REDACTED: Final = "***"


def _not_card_number(value: str) -> str:
    if looks_like_card_number(value):
        raise ValueError("must not be a card number")
    return value


def _clean_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if _text_has_card_number(value):
        raise ValueError("must not contain a card number")
    return value


_ZERO: Final = timedelta(0)


def _to_utc(value: datetime) -> datetime:
    # Nearly every input is already UTC ("...Z"); skipping astimezone for those is a
    # measurable share of decode time.
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("items must be distinct")
    return values


_UNIQUE_ITEMS: Final[dict[str, Any]] = {"uniqueItems": True}

# Opaque aggregate id (UUIDs in practice). No ':' because ids become parts of Redis keys,
# where ':' is the separator; no '.' or '$' because they are special in MongoDB paths.
_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
Id = Annotated[
    str,
    StringConstraints(pattern=rf"^{_ID_PATTERN}$"),
    AfterValidator(_not_card_number),
]

UtcDatetime = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_to_utc)]
"""A timezone-aware instant, normalised to UTC. Naive datetimes are refused: a time without
an offset means something different on every machine. Strict, so epoch numbers (seconds or
milliseconds?) are refused too."""

# Free text: never blank, never holding a card number. One alias per length bound, because
# a bound added around an alias does not replace the alias's own bound.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_clean_text)]
TitleText = Annotated[
    str, StringConstraints(min_length=1, max_length=300), AfterValidator(_clean_text)
]
LongText = Annotated[
    str, StringConstraints(min_length=1, max_length=5000), AfterValidator(_clean_text)
]
DisplayName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80),
    AfterValidator(_clean_text),
    Field(json_schema_extra=PERSONAL),
]
# Free text written by a person can identify them, hence personal.
ReviewText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_REVIEW_CHARS),
    AfterValidator(_clean_text),
    Field(json_schema_extra=PERSONAL),
]

_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def _email(value: str) -> str:
    # Lower-cased because uniqueness is enforced on it: "Ann@x.io" and "ann@x.io" are one
    # account in practice, even though RFC 5321 allows the local part to be case-sensitive.
    value = value.strip().lower()
    local, _, _ = value.partition("@")
    if len(local) > 64 or not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address like name@example.com")
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_email),
    Field(json_schema_extra={"format": "email", **PERSONAL}),
]

# ISO 3166-1 alpha-2, officially assigned codes (249), as listed in IANA's iso3166.tab.
_COUNTRIES: Final = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a grid of 249 codes reads better than a 249-item literal
)


def _country(value: str) -> str:
    if value not in _COUNTRIES:
        raise ValueError("must be an assigned ISO 3166-1 alpha-2 country code")
    return value


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_country)]
"""ISO 3166-1 alpha-2, upper case (``"FR"``)."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 alphabetic code, upper case (``"EUR"``)."""

Language = Annotated[
    str,
    StringConstraints(
        max_length=16, pattern=r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?$"
    ),
]
"""A BCP 47 language tag limited to language[-Script][-REGION]: ``en``, ``pt-BR``,
``zh-Hant-TW``, ``es-419``."""

Cents = Annotated[StrictInt, Field(gt=0, le=1_000_000)]
"""A positive amount in the currency's minor unit. The upper bound (10 000.00) is far above
any plan price, so reaching it means a bug, not a customer."""

Seconds = Annotated[StrictInt, Field(ge=0, le=86_400)]
"""Media time in whole seconds; nothing in the catalogue runs longer than a day."""

RuntimeMinutes = Annotated[StrictInt, Field(ge=1, le=600)]

Weight = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]

# pydantic would publish the non-standard format "ipvanyaddress"; say it in standard terms.
IpAddress = Annotated[
    IPvAnyAddress,
    WithJsonSchema(
        {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}], **PERSONAL}
    ),
]

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

# argon2id in PHC string form, as produced by argon2-cffi:
# $argon2id$v=19$m=65536,t=3,p=4$<salt b64>$<hash b64>
PasswordHash = Annotated[
    str,
    StringConstraints(
        max_length=512,
        pattern=r"^\$argon2id\$v=19\$m=[0-9]{1,10},t=[0-9]{1,5},p=[0-9]{1,3}"
        r"\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$",
    ),
    Field(json_schema_extra=SENSITIVE),
]

# A processor token stands in for the card; the "tok_" prefix makes sure a card number can
# never be mistaken for (or smuggled in as) a token.
CardToken = Annotated[
    str,
    StringConstraints(pattern=r"^tok_[A-Za-z0-9]{8,64}$"),
    Field(json_schema_extra=SENSITIVE),
]

Last4 = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


def _past_or_present_year(value: int) -> int:
    if value > datetime.now(UTC).year:
        raise ValueError("must not be in the future")
    return value


def _not_far_future_year(value: int) -> int:
    # Titles are announced a few years ahead; further than that is a typo.
    if value > datetime.now(UTC).year + 5:
        raise ValueError("must not be more than 5 years in the future")
    return value


BirthYear = Annotated[
    StrictInt,
    Field(ge=1900, json_schema_extra=PERSONAL),
    AfterValidator(_past_or_present_year),
]
# The first surviving motion picture (Roundhay Garden Scene) dates from 1888.
ReleaseYear = Annotated[StrictInt, Field(ge=1888), AfterValidator(_not_far_future_year)]


class Genre(StrEnum):
    """The catalogue's controlled genre vocabulary (also the per-genre ranking keys)."""

    ACTION = "action"
    ADVENTURE = "adventure"
    ANIMATION = "animation"
    COMEDY = "comedy"
    CRIME = "crime"
    DOCUMENTARY = "documentary"
    DRAMA = "drama"
    FAMILY = "family"
    FANTASY = "fantasy"
    HISTORY = "history"
    HORROR = "horror"
    KIDS = "kids"
    MUSIC = "music"
    MYSTERY = "mystery"
    REALITY = "reality"
    ROMANCE = "romance"
    SCIENCE_FICTION = "science_fiction"
    SPORT = "sport"
    THRILLER = "thriller"
    WAR = "war"
    WESTERN = "western"


class MaturityRating(StrEnum):
    """Minimum viewer age, from least to most restricted."""

    ALL = "all"
    AGE_7 = "7+"
    AGE_13 = "13+"
    AGE_16 = "16+"
    AGE_18 = "18+"


class DeviceKind(StrEnum):
    TV = "tv"
    WEB = "web"
    MOBILE = "mobile"
    TABLET = "tablet"
    CONSOLE = "console"
    SET_TOP_BOX = "set_top_box"


Genres = Annotated[
    tuple[Genre, ...],
    Field(max_length=10, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
SomeGenres = Annotated[
    tuple[Genre, ...],
    Field(min_length=1, max_length=10, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
Languages = Annotated[
    tuple[Language, ...],
    Field(max_length=20, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]
SomeLanguages = Annotated[
    tuple[Language, ...],
    Field(min_length=1, max_length=20, json_schema_extra=_UNIQUE_ITEMS),
    AfterValidator(_distinct),
]


class _Closed(BaseModel):
    """Frozen, closed, and never echoing input values in error messages."""

    # hide_input_in_errors: ValidationError messages end up in logs and dead-letter headers,
    # and the input may be a password hash or a card token.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Device(_Closed):
    """The client a user acts from."""

    kind: DeviceKind
    # An installation id is an online identifier of a person under GDPR.
    device_id: Annotated[Id, Field(json_schema_extra=PERSONAL)]


# ---------------------------------------------------------------------------------------
# 4. The envelope
# ---------------------------------------------------------------------------------------


class Payload(_Closed):
    """Base class of every event payload."""


P = TypeVar("P", bound=Payload)

_EVENT_TYPE_PATTERN: Final = r"^[a-z]+(?:\.[a-z_]+)+$"


class Envelope(_Closed, Generic[P]):
    """What travels on Kafka: routing and tracing metadata around one typed payload.

    ``Envelope[RatingSubmitted]`` is the concrete model of one event type. Build events with
    :func:`new_event` and read them with :func:`decode`; both pick the payload model from
    :data:`EVENT_TYPES`, and the bare ``Envelope`` cannot know which payload to expect.
    """

    event_id: UUID = Field(
        default_factory=uuid7,
        description="Unique id; UUIDv7, so ids sort by creation time. Idempotency key.",
    )
    type: Annotated[str, StringConstraints(max_length=64, pattern=_EVENT_TYPE_PATTERN)] = Field(
        description="Event type, family.fact (e.g. rating.submitted)."
    )
    schema_version: StrictInt = Field(ge=1, description="Version of the payload schema.")
    occurred_at: UtcDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the fact happened (UTC). The event-time guard for ordering.",
    )
    key: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Kafka key: the id of the aggregate this event orders within."
    )
    source: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")] = (
        Field(description="Producer that emitted it (api, simulator, ...).")
    )
    trace_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")] = (
        Field(description="Correlates the events caused by one request (W3C trace id).")
    )
    payload: P

    @model_validator(mode="after")
    def _agrees_with_registry(self) -> Self:
        # A mismatched key would put the event on the wrong partition and break per-aggregate
        # ordering silently, so it is a contract violation rather than a routing detail.
        spec = EVENT_TYPES.get(self.type)
        if spec is None:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.schema_version != spec.schema_version:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported for {self.type}"
            )
        if type(self.payload) is not spec.payload_model:
            raise ValueError(
                f"payload is a {type(self.payload).__name__}, "
                f"{self.type} needs a {spec.payload_model.__name__}"
            )
        if self.key != spec.key_of(self.payload):
            raise ValueError(f"key must equal payload.{spec.key_field}")
        return self


# ---------------------------------------------------------------------------------------
# 5. Payloads, by family
# ---------------------------------------------------------------------------------------

# --- users -----------------------------------------------------------------------------


class UserRegistered(Payload):
    """A new account. The API hashes the password before publishing; never plain text."""

    user_id: Id
    email: Email
    display_name: DisplayName
    country: CountryCode
    birth_year: BirthYear
    password_hash: PasswordHash


class UserProfileUpdated(Payload):
    """A partial profile change: absent (null) fields are unchanged."""

    user_id: Id
    email: Email | None = None
    display_name: DisplayName | None = None
    country: CountryCode | None = None
    birth_year: BirthYear | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        changes = (name for name in type(self).model_fields if name != "user_id")
        if all(getattr(self, name) is None for name in changes):
            raise ValueError("at least one profile field must be set")
        return self


class ErasureReason(StrEnum):
    USER_REQUEST = "user_request"
    ADMIN = "admin"
    RETENTION = "retention"


class UserErased(Payload):
    """Right to erasure: stores delete or anonymise everything about the user."""

    user_id: Id
    reason: ErasureReason


class PreferencesUpdated(Payload):
    """The full preference set (a snapshot, not a patch: the newest ``occurred_at`` wins)."""

    user_id: Id
    genres: Genres = Field(description="Favourite genres, most liked first.")
    languages: SomeLanguages = Field(description="Audio languages in order of preference.")
    subtitles: StrictBool
    subtitle_language: Language | None = None
    autoplay_next_episode: StrictBool
    autoplay_previews: StrictBool
    maturity_limit: MaturityRating = Field(description="Most restricted rating allowed.")


# --- subscriptions and payments ---------------------------------------------------------


class PlanCode(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


@dataclass(frozen=True, slots=True)
class Plan:
    """An entry of the fixed plan catalogue (seeded into the ``plans`` table)."""

    code: PlanCode
    name: str
    price_cents: int
    currency: str
    max_streams: int
    max_resolution: str


#: The plan catalogue. Events refer to plans by code only, so a later price change does not
#: make old events wrong; the stream limit is what the Redis sink enforces during playback.
PLANS: Final[Mapping[PlanCode, Plan]] = MappingProxyType(
    {
        PlanCode.BASIC: Plan(PlanCode.BASIC, "Basic", 799, "EUR", 1, "720p"),
        PlanCode.STANDARD: Plan(PlanCode.STANDARD, "Standard", 1299, "EUR", 2, "1080p"),
        PlanCode.PREMIUM: Plan(PlanCode.PREMIUM, "Premium", 1799, "EUR", 4, "2160p"),
    }
)

_MAX_PERIOD = timedelta(days=366)


def _check_period(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValueError("period_end must be after period_start")
    if end - start > _MAX_PERIOD:
        raise ValueError("a billing period lasts at most 366 days")


class SubscriptionStarted(Payload):
    """A user subscribed; the first period is paid by a ``payment.succeeded``."""

    subscription_id: Id
    user_id: Id
    plan: PlanCode
    period_start: UtcDatetime
    period_end: UtcDatetime

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        _check_period(self.period_start, self.period_end)
        return self


class SubscriptionPlanChanged(Payload):
    """Upgrade or downgrade, effective at ``occurred_at``."""

    subscription_id: Id
    user_id: Id
    from_plan: PlanCode
    to_plan: PlanCode

    @model_validator(mode="after")
    def _plan_differs(self) -> Self:
        if self.from_plan == self.to_plan:
            raise ValueError("to_plan must differ from from_plan")
        return self


class SubscriptionRenewed(Payload):
    """A new billing period began."""

    subscription_id: Id
    user_id: Id
    plan: PlanCode
    period_start: UtcDatetime
    period_end: UtcDatetime
    payment_id: Id | None = Field(default=None, description="The payment that paid it.")

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        _check_period(self.period_start, self.period_end)
        return self


class CancellationReason(StrEnum):
    USER_REQUEST = "user_request"
    PAYMENT_FAILED = "payment_failed"
    FRAUD = "fraud"
    ACCOUNT_ERASED = "account_erased"


class SubscriptionCanceled(Payload):
    """Cancellation; access lasts until ``ends_at`` (end of the paid period, or now)."""

    subscription_id: Id
    user_id: Id
    reason: CancellationReason
    ends_at: UtcDatetime


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    DINERS = "diners"
    UNIONPAY = "unionpay"
    MAESTRO = "maestro"


class _CardPayment(Payload):
    # The processor's token, brand and last four digits are all that is ever stored: with
    # them support can say "your Visa ending 4242" without the system holding card data.
    payment_id: Id
    subscription_id: Id
    user_id: Id
    amount_cents: Cents
    currency: CurrencyCode
    card_token: CardToken
    card_brand: CardBrand
    card_last4: Last4


class PaymentSucceeded(_CardPayment):
    """The processor captured a payment."""


class PaymentFailureReason(StrEnum):
    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    AUTHENTICATION_REQUIRED = "authentication_required"
    FRAUD_SUSPECTED = "fraud_suspected"
    PROCESSING_ERROR = "processing_error"


class PaymentFailed(_CardPayment):
    """The processor refused or could not process a payment."""

    failure_reason: PaymentFailureReason


class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    SERVICE_ISSUE = "service_issue"


class PaymentRefunded(Payload):
    """Money returned for an earlier payment (``payment_id``), to the card it came from.

    No card fields: the refund goes back through the original payment, so repeating the
    token here would only spread a secret further.
    """

    payment_id: Id
    refund_id: Id
    subscription_id: Id
    user_id: Id
    amount_cents: Cents
    currency: CurrencyCode
    reason: RefundReason


# --- sessions ---------------------------------------------------------------------------


class LoginMethod(StrEnum):
    PASSWORD = "password"


class SessionEndReason(StrEnum):
    LOGOUT = "logout"
    EXPIRED = "expired"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "password_changed"
    USER_ERASED = "user_erased"


# Session events are published by the API after it created the session in Redis itself
# (authentication cannot wait for a queue); they feed the audit and the Redis sink's
# per-user session index. The bearer token is never in an event: ``session_id`` is a
# separate public handle, so reading the event log does not let anyone log in.


class SessionLoginStarted(Payload):
    """A user logged in; a session was created."""

    session_id: Id
    user_id: Id
    method: LoginMethod
    device: Device
    ip_address: IpAddress
    user_agent: (
        Annotated[str, StringConstraints(max_length=512), Field(json_schema_extra=PERSONAL)] | None
    ) = None
    expires_at: UtcDatetime


class SessionRefreshed(Payload):
    """Sliding expiry: a session was used and extended."""

    session_id: Id
    user_id: Id
    ip_address: IpAddress
    expires_at: UtcDatetime


class SessionEnded(Payload):
    """A session is over (logout, expiry, revocation)."""

    session_id: Id
    user_id: Id
    reason: SessionEndReason


# --- playback ---------------------------------------------------------------------------


class _Playback(Payload):
    viewing_session_id: Id
    user_id: Id
    title_id: Id
    episode_id: Id | None = Field(default=None, description="Set for series episodes.")
    position_seconds: Seconds
    duration_seconds: Annotated[Seconds, Field(gt=0)]
    device: Device

    @model_validator(mode="after")
    def _position_within_media(self) -> Self:
        if self.position_seconds > self.duration_seconds:
            raise ValueError("position_seconds must not exceed duration_seconds")
        return self


class PlaybackStarted(_Playback):
    """A stream started (counts against the plan's concurrent-stream limit)."""


class PlaybackProgress(_Playback):
    """Heartbeat while playing (continue-watching position, most-watched counters)."""


class PlaybackStopReason(StrEnum):
    USER = "user"
    COMPLETED = "completed"
    ERROR = "error"
    IDLE_TIMEOUT = "idle_timeout"
    STREAM_LIMIT = "stream_limit"


class PlaybackStopped(_Playback):
    """A stream ended; frees a concurrent-stream slot."""

    reason: PlaybackStopReason


# --- ratings ----------------------------------------------------------------------------


class RatingSubmitted(Payload):
    """A user's rating of a title (replaces their previous rating of it)."""

    user_id: Id
    title_id: Id
    stars: Annotated[StrictInt, Field(ge=1, le=5)]
    review: ReviewText | None = None


class RatingRetracted(Payload):
    """A user withdrew their rating of a title."""

    user_id: Id
    title_id: Id


# --- catalog ----------------------------------------------------------------------------


class TitleKind(StrEnum):
    MOVIE = "movie"
    SERIES = "series"


class CastMember(_Closed):
    name: Name
    character: Name | None = None


class People(_Closed):
    directors: Annotated[tuple[Name, ...], Field(max_length=20)] = ()
    cast: Annotated[tuple[CastMember, ...], Field(max_length=200)] = ()


class Episode(_Closed):
    episode_id: Id = Field(description="Referenced by playback events.")
    number: Annotated[StrictInt, Field(ge=1, le=10_000)]
    title: Name
    runtime_minutes: RuntimeMinutes
    synopsis: LongText | None = None


class Season(_Closed):
    number: Annotated[StrictInt, Field(ge=0, le=200)] = Field(description="0 holds specials.")
    title: Name | None = None
    episodes: Annotated[tuple[Episode, ...], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _episode_numbers_unique(self) -> Self:
        numbers = [episode.number for episode in self.episodes]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"episode numbers must be unique within season {self.number}")
        return self


# JSON Schema cannot express "movie needs runtime_minutes, series needs seasons" through
# pydantic's generator, so the rule is added to the exported schema explicitly.
_TITLE_KIND_RULES: Final[dict[str, Any]] = {
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "movie"}}},
            "then": {
                "required": ["runtime_minutes"],
                "properties": {"runtime_minutes": {"type": "integer"}, "seasons": {"maxItems": 0}},
            },
        },
        {
            "if": {"properties": {"kind": {"const": "series"}}},
            "then": {
                "required": ["seasons"],
                "properties": {"runtime_minutes": {"type": "null"}, "seasons": {"minItems": 1}},
            },
        },
    ]
}


class TitleUpserted(Payload):
    """The full current state of a movie or series (a snapshot).

    ``version`` increases with every edit of the title; stores keep the highest version they
    have seen, so a late or replayed older snapshot never overwrites a newer one. Movies
    carry ``runtime_minutes``; series carry ``seasons`` with their episodes.
    """

    model_config = ConfigDict(json_schema_extra=_TITLE_KIND_RULES)

    title_id: Id
    kind: TitleKind
    version: Annotated[StrictInt, Field(ge=1)]
    title: TitleText
    original_title: TitleText | None = None
    synopsis: LongText | None = None
    year: ReleaseYear
    genres: SomeGenres
    people: People = People()
    languages: SomeLanguages = Field(description="Audio languages.")
    subtitle_languages: Languages = ()
    maturity_rating: MaturityRating
    runtime_minutes: RuntimeMinutes | None = Field(default=None, description="Movies only.")
    seasons: Annotated[tuple[Season, ...], Field(max_length=100)] = Field(
        default=(), description="Series only; season numbers unique."
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        if self.kind is TitleKind.MOVIE:
            if self.runtime_minutes is None:
                raise ValueError("a movie needs runtime_minutes")
            if self.seasons:
                raise ValueError("a movie has no seasons")
        else:
            if not self.seasons:
                raise ValueError("a series needs at least one season")
            if self.runtime_minutes is not None:
                raise ValueError("a series has no runtime_minutes (episodes have)")
            numbers = [season.number for season in self.seasons]
            if len(set(numbers)) != len(numbers):
                raise ValueError("season numbers must be unique")
            episode_ids = [e.episode_id for season in self.seasons for e in season.episodes]
            if len(set(episode_ids)) != len(episode_ids):
                raise ValueError("episode ids must be unique within the series")
        return self


class TitleRemoved(Payload):
    """The title leaves the catalogue. ``version`` is greater than the last upsert's."""

    title_id: Id
    version: Annotated[StrictInt, Field(ge=1)]


class RelationKind(StrEnum):
    SIMILAR = "similar"
    SEQUEL = "sequel"
    PREQUEL = "prequel"
    SAME_FRANCHISE = "same_franchise"
    SAME_DIRECTOR = "same_director"
    REMAKE = "remake"


class _Relation(Payload):
    """A directed edge between two titles; keyed by ``from_title_id``."""

    from_title_id: Id
    to_title_id: Id
    kind: RelationKind

    @model_validator(mode="after")
    def _not_to_itself(self) -> Self:
        if self.from_title_id == self.to_title_id:
            raise ValueError("a title cannot be related to itself")
        return self


class RelationAdded(_Relation):
    """Adds (or re-weights) the edge ``from -kind-> to``."""

    weight: Weight = Field(description="Strength of the relation, 0..1 (ranks suggestions).")


class RelationRemoved(_Relation):
    """Removes the edge ``from -kind-> to``."""


class AssetKind(StrEnum):
    POSTER = "poster"
    BACKDROP = "backdrop"
    THUMBNAIL = "thumbnail"


class ImageType(StrEnum):
    PNG = "image/png"
    JPEG = "image/jpeg"
    WEBP = "image/webp"


def _has_signature(content_type: ImageType, data: bytes) -> bool:
    if content_type is ImageType.PNG:
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type is ImageType.JPEG:
        return data.startswith(b"\xff\xd8\xff")
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


class AssetUploaded(Payload):
    """An image for a title, carried inline as base64.

    The bytes travel inside the event (not as a reference to some other storage) so that the
    MongoDB sink can write them to GridFS from the event alone: replay rebuilds the assets,
    and no second system has to be reachable and consistent. The price is a size limit
    (:data:`MAX_ASSET_BYTES`); display images fit comfortably. ``size_bytes`` and ``sha256``
    are checked against the decoded bytes, and the bytes must start with the signature of
    ``content_type``.
    """

    asset_id: Id
    title_id: Id
    kind: AssetKind
    content_type: ImageType
    size_bytes: Annotated[StrictInt, Field(gt=0, le=MAX_ASSET_BYTES)]
    sha256: Sha256Hex
    data_base64: Annotated[
        str, StringConstraints(min_length=4, max_length=(MAX_ASSET_BYTES + 2) // 3 * 4)
    ] = Field(description="The image, standard base64 with padding.")

    @property
    def data(self) -> bytes:
        """The image bytes."""
        return base64.b64decode(self.data_base64, validate=True)

    @model_validator(mode="after")
    def _bytes_match_metadata(self) -> Self:
        try:
            data = self.data
        except binascii.Error:
            raise ValueError("data_base64 is not valid base64") from None
        if len(data) != self.size_bytes:
            raise ValueError("size_bytes does not match the decoded data")
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError("sha256 does not match the decoded data")
        if not _has_signature(self.content_type, data):
            raise ValueError(f"data is not a {self.content_type.value} image")
        return self


# --- flags ------------------------------------------------------------------------------

FlagScalar = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=1024)]
    | None
)
FlagValue = (
    FlagScalar
    | Annotated[
        dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], FlagScalar],
        Field(max_length=32),
    ]
)


class FlagSet(Payload):
    """A feature flag or runtime variable changed, globally or for one user."""

    name: Annotated[
        str, StringConstraints(max_length=64, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
    ]
    value: FlagValue = Field(description="A JSON scalar or a flat object of scalars.")
    scope: Annotated[str, StringConstraints(pattern=rf"^(?:global|user:{_ID_PATTERN})$")] = Field(
        default="global", description="'global' or 'user:<user_id>'."
    )

    @model_validator(mode="after")
    def _value_is_small_and_clean(self) -> Self:
        encoded = json.dumps(self.value, separators=(",", ":"))
        if len(encoded.encode()) > MAX_FLAG_VALUE_BYTES:
            raise ValueError(f"value must encode to at most {MAX_FLAG_VALUE_BYTES} bytes")
        if contains_card_data(self.value):
            raise ValueError("value must not contain card data")
        return self


# ---------------------------------------------------------------------------------------
# 6. The registry
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything the system knows about one event type."""

    type: str
    schema_version: int
    # builtins.type: the ``type`` field above shadows the builtin in this class body.
    payload_model: builtins.type[Payload]
    topic: Topic
    #: Payload field whose value is the Kafka key (and the envelope's ``key``).
    key_field: str
    #: Sinks that consume it, in :class:`Sink` order; the audit consumes everything.
    consumers: tuple[Sink, ...]
    #: The concrete envelope model, ``Envelope[payload_model]``.
    envelope_model: builtins.type[Envelope[Any]]

    @property
    def description(self) -> str:
        return (self.payload_model.__doc__ or "").strip().splitlines()[0]

    def key_of(self, payload: Payload) -> str:
        return cast(str, getattr(payload, self.key_field))

    @property
    def sensitive_paths(self) -> tuple[tuple[str, ...], ...]:
        """Paths (``("payload", "password_hash")``; ``"*"`` = every list item) marked
        ``x-sensitive`` in the schema."""
        return _marked_paths(self.type, "x-sensitive")

    @property
    def personal_paths(self) -> tuple[tuple[str, ...], ...]:
        """Paths marked ``x-personal`` in the schema."""
        return _marked_paths(self.type, "x-personal")


def _spec(
    event_type: str,
    payload_model: type[Payload],
    topic: Topic,
    key_field: str,
    consumers: Iterable[Sink],
    schema_version: int = 1,
) -> EventSpec:
    if key_field not in payload_model.model_fields:
        raise TypeError(f"{payload_model.__name__} has no key field {key_field!r}")
    return EventSpec(
        type=event_type,
        schema_version=schema_version,
        payload_model=payload_model,
        topic=topic,
        key_field=key_field,
        consumers=tuple(sink for sink in Sink if sink in {*consumers, Sink.AUDIT}),
        envelope_model=Envelope[payload_model],  # type: ignore[valid-type]
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
# (type, payload model, key field, consumers besides the audit), grouped by topic.
_REGISTRY: Final[dict[Topic, tuple[tuple[str, type[Payload], str, tuple[Sink, ...]], ...]]] = {
    Topic.USERS: (
        ("user.registered", UserRegistered, "user_id", (_PG,)),
        ("user.profile_updated", UserProfileUpdated, "user_id", (_PG,)),
        ("user.erased", UserErased, "user_id", (_PG, _REDIS)),
        ("preferences.updated", PreferencesUpdated, "user_id", (_PG,)),
    ),
    Topic.SUBSCRIPTIONS: (
        ("subscription.started", SubscriptionStarted, "user_id", (_PG, _REDIS)),
        ("subscription.plan_changed", SubscriptionPlanChanged, "user_id", (_PG, _REDIS)),
        ("subscription.renewed", SubscriptionRenewed, "user_id", (_PG, _REDIS)),
        ("subscription.canceled", SubscriptionCanceled, "user_id", (_PG, _REDIS)),
        ("payment.succeeded", PaymentSucceeded, "user_id", (_PG,)),
        ("payment.failed", PaymentFailed, "user_id", (_PG,)),
        ("payment.refunded", PaymentRefunded, "user_id", (_PG,)),
    ),
    Topic.SESSIONS: (
        ("session.login_started", SessionLoginStarted, "user_id", (_REDIS,)),
        ("session.refreshed", SessionRefreshed, "user_id", (_REDIS,)),
        ("session.ended", SessionEnded, "user_id", (_REDIS,)),
    ),
    Topic.PLAYBACK: (
        ("playback.started", PlaybackStarted, "user_id", (_REDIS,)),
        ("playback.progress", PlaybackProgress, "user_id", (_REDIS,)),
        ("playback.stopped", PlaybackStopped, "user_id", (_REDIS,)),
    ),
    Topic.RATINGS: (
        ("rating.submitted", RatingSubmitted, "user_id", (_PG, _REDIS)),
        ("rating.retracted", RatingRetracted, "user_id", (_PG, _REDIS)),
    ),
    Topic.CATALOG: (
        ("catalog.title_upserted", TitleUpserted, "title_id", (_MONGO, _REDIS)),
        ("catalog.title_removed", TitleRemoved, "title_id", (_MONGO, _REDIS)),
        ("catalog.relation_added", RelationAdded, "from_title_id", (_MONGO,)),
        ("catalog.relation_removed", RelationRemoved, "from_title_id", (_MONGO,)),
        ("catalog.asset_uploaded", AssetUploaded, "title_id", (_MONGO,)),
    ),
    Topic.FLAGS: (("flag.set", FlagSet, "name", (_REDIS,)),),
}

#: Every event type this build can produce and read.
EVENT_TYPES: Final[dict[str, EventSpec]] = {
    event_type: _spec(event_type, model, topic, key, consumers)
    for topic, rows in _REGISTRY.items()
    for event_type, model, key, consumers in rows
}


#: Cross-topic prerequisites: the topics whose events a topic's events may need to have been
#: applied first (a subscription needs its user; a rating its user; a playback start an active
#: subscription). Kafka gives no order across topics, so a sink defers such an event until its
#: group has read these topics past it (`polystream.runtime.progress`). Keyed alike (by user
#: id), so the prerequisite is in a known partition. Acyclic, so waiting always ends.
READ_AFTER: Final[Mapping[Topic, tuple[Topic, ...]]] = MappingProxyType({
    Topic.SUBSCRIPTIONS: (Topic.USERS,),
    Topic.RATINGS: (Topic.USERS,),
    Topic.PLAYBACK: (Topic.SUBSCRIPTIONS,),
})


def event_types_for(sink: Sink) -> tuple[str, ...]:
    """The event types a sink consumes, in registry order."""
    return tuple(t for t, spec in EVENT_TYPES.items() if sink in spec.consumers)


def topics_for(sink: Sink) -> tuple[Topic, ...]:
    """The topics a sink subscribes to. The audit also reads receipts and dead letters."""
    topics = {EVENT_TYPES[t].topic for t in event_types_for(sink)}
    if sink is Sink.AUDIT:
        topics |= {Topic.RECEIPTS, Topic.DEADLETTER}
    return tuple(topic for topic in Topic if topic in topics)


# ---------------------------------------------------------------------------------------
# 7. The codec
# ---------------------------------------------------------------------------------------


def new_trace_id() -> str:
    """A fresh W3C-style trace id (32 hex digits)."""
    return os.urandom(16).hex()


def _field_errors(
    error: ValidationError, prefix: tuple[str | int, ...] = ()
) -> tuple[FieldError, ...]:
    return tuple(_field_error(detail, prefix) for detail in error.errors(include_input=False))


def _field_error(detail: ErrorDetails, prefix: tuple[str | int, ...]) -> FieldError:
    parts: list[str] = []
    for part in (*prefix, *detail["loc"]):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else part)
    return FieldError(path="".join(parts) or "(event)", message=detail["msg"], kind=detail["type"])


def new_event(
    type: str,
    payload: Payload | Mapping[str, Any],
    *,
    source: str,
    trace_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[Any]:
    """Wrap a payload in an envelope: fresh UUIDv7 id, key from the registry, UTC time.

    ``payload`` is either the payload model of ``type`` or a mapping validated into it.
    Raises :class:`UnknownEventType` or :class:`EventValidationError`.
    """
    spec = EVENT_TYPES.get(type)
    if spec is None:
        raise UnknownEventType(f"unknown event type {type!r}", event_type=type)
    if isinstance(payload, Payload):
        if not isinstance(payload, spec.payload_model):
            raise EventValidationError.from_errors(
                (
                    FieldError(
                        "payload",
                        f"{type} needs a {spec.payload_model.__name__}, "
                        f"got a {payload.__class__.__name__}",
                        "model_type",
                    ),
                ),
                event_type=type,
            )
        model = payload
    else:
        try:
            model = spec.payload_model.model_validate(payload)
        except ValidationError as exc:
            raise EventValidationError.from_errors(
                _field_errors(exc, ("payload",)), event_type=type
            ) from None
    try:
        return spec.envelope_model(
            type=type,
            schema_version=spec.schema_version,
            occurred_at=datetime.now(UTC) if occurred_at is None else occurred_at,
            key=spec.key_of(model),
            source=source,
            trace_id=trace_id or new_trace_id(),
            payload=model,
        )
    except ValidationError as exc:
        raise EventValidationError.from_errors(_field_errors(exc), event_type=type) from None


def encode(envelope: Envelope[Any]) -> bytes:
    """Compact UTF-8 JSON for Kafka. Raises :class:`OversizedEvent` above the limit."""
    raw = envelope.__pydantic_serializer__.to_json(envelope)
    if len(raw) > MAX_EVENT_BYTES:
        raise OversizedEvent(
            f"encoded event is {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}",
            event_type=envelope.type,
        )
    return raw


class _Header(BaseModel):
    """Just enough of an envelope to choose its model; everything else is skipped."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    type: Any = None
    schema_version: Any = None
    # Presence only: the envelope model would otherwise fill these two from its defaults,
    # and an event that arrives without an id must not silently get a new one.
    event_id: Any = None
    occurred_at: Any = None


def decode(raw: bytes | bytearray | memoryview) -> Envelope[Any]:
    """Parse and validate one Kafka record value.

    Cheap checks first: size, then the header (``type`` and ``schema_version``, read by a
    small model that skips everything else; measured about twice as fast as ``json.loads``),
    then one pydantic pass of the one envelope model registered for that type; the other
    payload models are never tried. Raises a subclass of :class:`InvalidEvent` whose ``code`` is
    the dead-letter reason.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise OversizedEvent(f"record is {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
    data = raw if isinstance(raw, bytes) else bytes(raw)
    try:
        header = _Header.model_validate_json(data)
    except ValidationError as exc:
        detail = exc.errors(include_input=False)[0]
        if detail["type"] == "json_invalid":
            raise MalformedEvent(f"record is not valid JSON ({detail['msg']})") from None
        raise MalformedEvent("record is not a JSON object") from None
    spec = _spec_for_header(header.type, header.schema_version)
    _require_generated_fields(spec, header.event_id, header.occurred_at)
    try:
        return spec.envelope_model.model_validate_json(data)
    except ValidationError as exc:
        raise EventValidationError.from_errors(_field_errors(exc), event_type=spec.type) from None


def decode_dict(obj: Mapping[str, Any]) -> Envelope[Any]:
    """Validate an already-parsed event (the JSON form, e.g. from an HTTP body or the audit)."""
    spec = _spec_for_header(obj.get("type"), obj.get("schema_version"))
    _require_generated_fields(spec, obj.get("event_id"), obj.get("occurred_at"))
    try:
        # Through JSON text, so strict fields (datetimes) accept their JSON form exactly as
        # they would on the wire, and Python-only values (a datetime object) do not slip in.
        text = json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"not JSON data: {exc}") from None
    try:
        return spec.envelope_model.model_validate_json(text)
    except ValidationError as exc:
        raise EventValidationError.from_errors(_field_errors(exc), event_type=spec.type) from None


def _spec_for_header(event_type: object, version: object) -> EventSpec:
    if not isinstance(event_type, str):
        problem = "is missing" if event_type is None else "must be a string"
        raise EventValidationError.from_errors((FieldError("type", problem, "header"),))
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        # The type is echoed only when it looks like a type name: it goes into headers.
        if len(event_type) <= 64 and re.fullmatch(_EVENT_TYPE_PATTERN, event_type):
            raise UnknownEventType(f"unknown event type {event_type!r}", event_type=event_type)
        raise UnknownEventType("unknown event type (not a valid type name)")
    if type(version) is not int:
        raise EventValidationError.from_errors(
            (FieldError("schema_version", "must be an integer", "header"),), event_type=spec.type
        )
    if version != spec.schema_version:
        raise UnsupportedSchemaVersion(
            f"{spec.type} schema_version {version} is not supported "
            f"(this build reads {spec.schema_version})",
            event_type=spec.type,
        )
    return spec


def _require_generated_fields(spec: EventSpec, event_id: object, occurred_at: object) -> None:
    missing = tuple(
        FieldError(name, "Field required", "missing")
        for name, value in (("event_id", event_id), ("occurred_at", occurred_at))
        if value is None
    )
    if missing:
        raise EventValidationError.from_errors(missing, event_type=spec.type)


def dead_letter_headers(
    error: InvalidEvent | str,
    *,
    topic: str,
    partition: int,
    offset: int,
    consumer: Sink | str,
    detail: str | None = None,
) -> dict[str, bytes]:
    """Kafka headers for a dead-letter record (see :class:`DeadLetterHeader`).

    ``error`` is the :class:`InvalidEvent` that refused the record, or a reason code such
    as ``"store_rejected"`` when a store refused a valid event permanently (then ``detail``
    says why).
    """
    if isinstance(error, InvalidEvent):
        reason, text, event_type = error.code, error.reason, error.event_type
    else:
        reason, text, event_type = error, detail or error, None
    headers = {
        DeadLetterHeader.REASON.value: reason,
        # Bounded: headers count against the record size limit.
        DeadLetterHeader.DETAIL.value: text[:1000],
        DeadLetterHeader.TOPIC.value: topic,
        DeadLetterHeader.PARTITION.value: str(partition),
        DeadLetterHeader.OFFSET.value: str(offset),
        DeadLetterHeader.CONSUMER.value: str(consumer),
    }
    if event_type is not None:
        headers[DeadLetterHeader.EVENT_TYPE.value] = event_type
    return {name: value.encode() for name, value in headers.items()}


class ReceiptStatus(StrEnum):
    """What a sink did with one event."""

    STORED = "stored"
    DUPLICATE = "duplicate"  #: already applied (ledger / marker / version says so)
    STALE = "stale"  #: a newer version or event time was already applied
    REJECTED = "rejected"  #: valid event the store refused (e.g. email taken)
    DEAD_LETTERED = "dead_lettered"


class Receipt(_Closed):
    """A sink's processing receipt, published on ``polystream.receipts`` (keyed by event id)."""

    event_id: UUID
    event_type: Annotated[str, StringConstraints(max_length=64)]
    sink: Sink
    status: ReceiptStatus
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None
    processed_at: UtcDatetime


# ---------------------------------------------------------------------------------------
# 8. Redaction and pseudonymisation
# ---------------------------------------------------------------------------------------

# Applied on top of the schema markers, to anything (unknown types, dead letters, request
# bodies): names that always hold secrets. Normalised like _CARD_KEYS.
_SECRET_KEYS: Final = _CARD_KEYS | frozenset(
    {
        "password",
        "passwordhash",
        "newpassword",
        "token",
        "cardtoken",
        "accesstoken",
        "refreshtoken",
        "sessiontoken",
        "secret",
        "clientsecret",
        "apikey",
        "authorization",
    }
)


@cache
def _marked_paths(event_type: str, marker: str) -> tuple[tuple[str, ...], ...]:
    schema = EVENT_TYPES[event_type].envelope_model.model_json_schema()
    definitions: dict[str, Any] = schema.get("$defs", {})
    found: list[tuple[str, ...]] = []

    def walk(node: Mapping[str, Any], path: tuple[str, ...], seen: frozenset[str]) -> None:
        if node.get(marker):
            found.append(path)
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:  # recursive schemas would loop forever
                walk(definitions[name], path, seen | {name})
        for option in node.get("anyOf", ()):
            walk(option, path, seen)
        items = node.get("items")
        if isinstance(items, Mapping):
            walk(items, (*path, "*"), seen)
        for name, child in node.get("properties", {}).items():
            walk(child, (*path, name), seen)

    walk(schema, (), frozenset())
    return tuple(dict.fromkeys(found))


def _apply(data: Any, path: tuple[str, ...], change: Any) -> None:
    """Replace the non-null value(s) at ``path`` with ``change(value)``."""
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for index, item in enumerate(data):
                if rest:
                    _apply(item, rest, change)
                elif item is not None:
                    data[index] = change(item)
        return
    if not isinstance(data, dict) or head not in data:
        return
    if rest:
        _apply(data[head], rest, change)
    elif data[head] is not None:
        data[head] = change(data[head])


def _iter_dicts(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _as_json_data(
    event: Envelope[Any] | Mapping[str, Any],
) -> tuple[dict[str, Any], EventSpec | None]:
    if isinstance(event, Envelope):
        return event.model_dump(mode="json"), EVENT_TYPES.get(event.type)
    # A fresh, JSON-shaped copy: the caller's object is never modified.
    data = json.loads(json.dumps(event, default=str))
    event_type = data.get("type") if isinstance(data, dict) else None
    spec = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    return data, spec


def redact(event: Envelope[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-shaped copy of an event with every secret replaced by ``"***"``.

    Secrets are the fields marked ``x-sensitive`` in the event's schema, plus, anywhere and
    for any input (unknown types, dead letters, request bodies), keys that always name
    secrets (password, token, cvv, ...). Use it before logging or auditing anything.
    """
    data, spec = _as_json_data(event)
    if spec is not None:
        for path in spec.sensitive_paths:
            _apply(data, path, lambda _value: REDACTED)
    for mapping in _iter_dicts(data):
        for key, value in mapping.items():
            if value is not None and _normalise_key(key) in _SECRET_KEYS:
                mapping[key] = REDACTED
    return data


def pseudonymise(event: Envelope[Any] | Mapping[str, Any], *, secret: bytes) -> dict[str, Any]:
    """:func:`redact`, then personal fields replaced by a keyed hash (``"hmac:<hex>"``).

    The same person gets the same pseudonym under the same ``secret``, so the audit can
    still answer "what did this account do" without storing who they are. Destroying the
    secret anonymises the whole trail at once.
    """
    data = redact(event)
    spec = EVENT_TYPES.get(data.get("type", "")) if isinstance(data.get("type"), str) else None
    if spec is not None:

        def pseudonym(value: Any) -> str:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            digest = hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]
            return f"hmac:{digest}"

        for path in spec.personal_paths:
            _apply(data, path, pseudonym)
    return data


__all__ = [
    "CONSUMER_GROUPS",
    "EVENT_TYPES",
    "MAX_ASSET_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_FLAG_VALUE_BYTES",
    "MAX_REVIEW_CHARS",
    "PERSONAL",
    "PLANS",
    "REDACTED",
    "SENSITIVE",
    "TOPIC_PARTITIONS",
    "AssetKind",
    "AssetUploaded",
    "CancellationReason",
    "CardBrand",
    "CastMember",
    "DeadLetterHeader",
    "Device",
    "DeviceKind",
    "Envelope",
    "Episode",
    "ErasureReason",
    "EventSpec",
    "FlagSet",
    "Genre",
    "ImageType",
    "LoginMethod",
    "MaturityRating",
    "Payload",
    "PaymentFailed",
    "PaymentFailureReason",
    "PaymentRefunded",
    "PaymentSucceeded",
    "People",
    "Plan",
    "PlanCode",
    "PlaybackProgress",
    "PlaybackStarted",
    "PlaybackStopReason",
    "PlaybackStopped",
    "PreferencesUpdated",
    "RatingRetracted",
    "RatingSubmitted",
    "Receipt",
    "ReceiptStatus",
    "RefundReason",
    "RelationAdded",
    "RelationKind",
    "RelationRemoved",
    "Season",
    "SessionEndReason",
    "SessionEnded",
    "SessionLoginStarted",
    "SessionRefreshed",
    "Sink",
    "SubscriptionCanceled",
    "SubscriptionPlanChanged",
    "SubscriptionRenewed",
    "SubscriptionStarted",
    "TitleKind",
    "TitleRemoved",
    "TitleUpserted",
    "Topic",
    "UserErased",
    "UserProfileUpdated",
    "UserRegistered",
    "contains_card_data",
    "dead_letter_headers",
    "decode",
    "decode_dict",
    "encode",
    "event_types_for",
    "find_card_data",
    "looks_like_card_number",
    "new_event",
    "new_trace_id",
    "pseudonymise",
    "redact",
    "topics_for",
]
