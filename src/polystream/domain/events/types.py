"""Field types shared by the payloads: ids, times, text, money, codes, and the schema markers.

Each type carries its constraints (pattern, bounds, validators) into both validation and the
exported JSON Schema, so a constraint is never only in one consumer. Numbers that are ids,
counts or money are strict integers (``"5"`` and ``5.0`` are refused): lax coercion hides
producer bugs.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    IPvAnyAddress,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from polystream.domain.events.cards import looks_like_card_number, text_has_card_number
from polystream.domain.events.limits import MAX_REVIEW_CHARS

#: Schema marker: the value is a secret (hash, token). :func:`redact` replaces it with
#: ``"***"`` and it never reaches logs or the audit index.
SENSITIVE: Final[dict[str, Any]] = {"x-sensitive": True}
#: Schema marker: the value identifies a person. The audit keeps it pseudonymised only.
PERSONAL: Final[dict[str, Any]] = {"x-personal": True}


def not_card_number(value: str) -> str:
    if looks_like_card_number(value):
        raise ValueError("must not be a card number")
    return value


# Line breaks and tabs are ordinary in multi-line text; every other C0/C1 control (NUL first:
# PostgreSQL refuses it in text while Redis stores it, so the stores would disagree) and lone
# surrogates (not encodable as UTF-8) are refused.
_MULTILINE_OK: Final = frozenset("\n\r\t")


def control_character_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text, or None. Shared by the contract and the API."""
    for char in value:
        # Fast path: printable ASCII is by far the common case.
        if " " <= char <= "~":
            continue
        category = unicodedata.category(char)
        if category == "Cc" and not (multiline and char in _MULTILINE_OK):
            return f"must not contain control characters (found U+{ord(char):04X})"
        if category == "Cs":
            return f"must not contain lone surrogates (found U+{ord(char):04X})"
    return None


def _no_controls(value: str) -> str:
    problem = control_character_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_text(value: str, *, multiline: bool) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    problem = control_character_problem(value, multiline=multiline)
    if problem:
        raise ValueError(problem)
    if text_has_card_number(value):
        raise ValueError("must not contain a card number")
    return value


def _clean_text(value: str) -> str:
    return _check_text(value, multiline=False)


def _clean_long_text(value: str) -> str:
    return _check_text(value, multiline=True)


_ZERO: Final = timedelta(0)


#: The instants the system accepts: [1970-01-01, 2200-01-01) UTC. Outside them a value is a
#: typo or an attack, and near year 1 or 9999 date arithmetic (a month later, a conversion to
#: UTC) overflows.
EARLIEST_INSTANT: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT: Final = datetime(2200, 1, 1, tzinfo=UTC)
INSTANT_RANGE_TEXT: Final = "between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z"


def bounded_utc(value: datetime) -> datetime:
    """``value`` in UTC, refused (ValueError) outside [1970, 2200)."""
    # The local fields are checked first: converting 0001-01-01T00:00+14:00 to UTC overflows,
    # and an OverflowError is not a validation error (it would be a 500). One day of margin
    # covers every possible offset.
    if not EARLIEST_INSTANT.year - 1 <= value.year <= LATEST_INSTANT.year:
        raise ValueError(f"must be {INSTANT_RANGE_TEXT}")
    # Nearly every input is already UTC ("...Z"); skipping astimezone for those is a
    # measurable share of decode time.
    utc = value if value.utcoffset() == _ZERO else value.astimezone(UTC)
    if not EARLIEST_INSTANT <= utc < LATEST_INSTANT:
        raise ValueError(f"must be {INSTANT_RANGE_TEXT}")
    return utc


# Opaque aggregate id (UUIDs in practice). No ':' because ids become parts of Redis keys,
# where ':' is the separator; no '.' or '$' because they are special in MongoDB paths.
ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
Id = Annotated[
    str,
    StringConstraints(pattern=rf"^{ID_PATTERN}$"),
    AfterValidator(not_card_number),
]

UtcDatetime = Annotated[AwareDatetime, Field(strict=True), AfterValidator(bounded_utc)]
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
    str, StringConstraints(min_length=1, max_length=5000), AfterValidator(_clean_long_text)
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
    AfterValidator(_clean_long_text),
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

PlainText = Annotated[str, AfterValidator(_no_controls)]
"""Short machine-ish text (a user agent, a flag's string value): no control characters."""

#: Every integer stored anywhere fits a signed 64-bit column; counters that only grow (title
#: versions) are bounded much lower so that one huge value cannot make every later one stale.
MAX_INT64: Final = 2**63 - 1
MAX_VERSION: Final = 2**31 - 1
Version = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
"""A per-aggregate edit counter (catalog titles)."""

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
def _token_not_card(value: str) -> str:
    # "tok_4111111111111111" fits the pattern: the prefix alone does not keep a card out.
    not_card_number(value.removeprefix("tok_"))
    return value


CardToken = Annotated[
    str,
    StringConstraints(pattern=r"^tok_[A-Za-z0-9]{8,64}$"),
    AfterValidator(_token_not_card),
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


__all__ = [
    "EARLIEST_INSTANT",
    "ID_PATTERN",
    "INSTANT_RANGE_TEXT",
    "LATEST_INSTANT",
    "MAX_INT64",
    "MAX_VERSION",
    "PERSONAL",
    "SENSITIVE",
    "BirthYear",
    "CardToken",
    "Cents",
    "CountryCode",
    "CurrencyCode",
    "DisplayName",
    "Email",
    "Id",
    "IpAddress",
    "Language",
    "Last4",
    "LongText",
    "Name",
    "PasswordHash",
    "PlainText",
    "ReleaseYear",
    "ReviewText",
    "RuntimeMinutes",
    "Seconds",
    "Sha256Hex",
    "TitleText",
    "UtcDatetime",
    "Version",
    "Weight",
    "bounded_utc",
    "control_character_problem",
]
