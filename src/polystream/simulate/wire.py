"""The simulator's fast path to event bytes: exact JSON without building pydantic models.

Validating a model per event costs ~10 µs and would cap the simulator far below its target
rate, so the hot event types are written as JSON text directly, in exactly the shape
:func:`polystream.domain.events.encode` produces (field order of the models, no spaces,
``null`` for absent optional fields, UTF-8 without ``\\u`` escapes, datetimes as
``2025-01-15T12:00:00Z`` or ``...:00.123000Z``). Nothing here is trusted on its own: the test
suite decodes every event of long runs with full validation and checks that re-encoding gives
the same bytes (``tests/simulate/test_roundtrip.py``), so a drift between this module and the
contract fails the build instead of reaching Kafka.

Rare, structurally rich events (catalog titles, flags) go through the validated models
instead (:func:`validated_event`); they are too few to matter for throughput.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, Final, NamedTuple
from uuid import UUID

from polystream.domain.events import ENVELOPE_MODELS, EVENT_TYPES, Payload, encode, spec_of

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000

_MASK_62: Final = (1 << 62) - 1
_UUID7_BITS: Final = (0x7 << 76) | (0x2 << 62)


class SimEvent(NamedTuple):
    """One generated event, ready for Kafka: ``value`` is the encoded envelope."""

    type: str
    topic: str
    key: str
    value: bytes


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(t_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=t_ms)


class TimeText:
    """Formats simulated instants (ms since the epoch) the way pydantic serialises them.

    The date part is cached per day: consecutive events are nearly always on the same day,
    and ``strftime`` costs more than the rest of the formatting together.
    """

    __slots__ = ("_date", "_day")

    def __init__(self) -> None:
        self._day = -1
        self._date = ""

    def __call__(self, t_ms: int) -> str:
        day, rest = divmod(t_ms, DAY_MS)
        if day != self._day:
            self._day = day
            self._date = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        seconds, millis = divmod(rest, 1000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        if millis:
            return f"{self._date}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}000Z"
        return f"{self._date}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def uuid7_text(t_ms: int, rng: Random) -> str:
    """A UUIDv7 (RFC 9562) from a simulated instant and the seeded RNG: deterministic per seed,
    and sorting by creation time like the ids the API mints."""
    rand = rng.getrandbits(74)
    value = (t_ms << 80) | _UUID7_BITS | ((rand >> 62) << 64) | (rand & _MASK_62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def trace_text(rng: Random) -> str:
    """A W3C-style trace id (32 hex digits) from the seeded RNG."""
    return f"{rng.getrandbits(128):032x}"


def quote(text: str) -> str:
    """A JSON string literal as pydantic writes it (UTF-8 kept, only required escapes)."""
    return json.dumps(text, ensure_ascii=False)


def quote_opt(text: str | None) -> str:
    return "null" if text is None else json.dumps(text, ensure_ascii=False)


def json_bool(flag: bool) -> str:
    return "true" if flag else "false"


class Encoder:
    """Builds envelopes around payload JSON text for one producer ``source``."""

    __slots__ = ("_after_key", "_rng", "_time", "_type_parts")

    def __init__(self, rng: Random, source: str) -> None:
        self._rng = rng
        self._time = TimeText()
        # Everything between the event id and occurred_at is fixed per type.
        self._type_parts = {
            event_type: (
                f'","type":"{event_type}","schema_version":{spec.schema_version},"occurred_at":"'
            )
            for event_type, spec in EVENT_TYPES.items()
        }
        self._after_key = f'","source":{quote(source)},"trace_id":"'

    @property
    def time_text(self) -> TimeText:
        return self._time

    def envelope(self, event_type: str, t_ms: int, key: str, trace: str, payload: str) -> bytes:
        """The encoded event; ``key`` and ``trace`` must be plain ids (no JSON escaping)."""
        return (
            f'{{"event_id":"{uuid7_text(t_ms, self._rng)}{self._type_parts[event_type]}'
            f'{self._time(t_ms)}","key":"{key}{self._after_key}{trace}","payload":{payload}}}'
        ).encode()


def validated_event(
    model: type[Payload],
    payload: dict[str, Any],
    *,
    t_ms: int,
    rng: Random,
    source: str,
    trace: str,
) -> bytes:
    """The slow, fully validated path: payload and envelope models, then ``encode``.

    Raises the contract's validation errors, which for the simulator means a bug (or, for an
    imported catalog, a row that slipped past the import checks).
    """
    spec = spec_of(model)
    fields = model.model_validate(payload)
    envelope = ENVELOPE_MODELS[spec.type](
        event_id=UUID(uuid7_text(t_ms, rng)),
        type=spec.type,
        schema_version=spec.schema_version,
        occurred_at=from_ms(t_ms),
        key=spec.key_of(fields),
        source=source,
        trace_id=trace,
        payload=fields,
    )
    return encode(envelope)


__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "Encoder",
    "SimEvent",
    "TimeText",
    "from_ms",
    "json_bool",
    "quote",
    "quote_opt",
    "to_ms",
    "trace_text",
    "uuid7_text",
    "validated_event",
]


def json_list(items: list[str] | tuple[str, ...]) -> str:
    """A JSON array of plain strings (ids, codes: nothing that needs escaping)."""
    return "[" + ",".join(f'"{item}"' for item in items) + "]"
