"""Fixtures of the audit tests: one index of each kind, events with chosen ids and times."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from argon2 import PasswordHasher

from polystream.audit.documents import epoch_ms
from polystream.audit.jsonl import JsonlAuditIndex
from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.ports import AuditIndex
from polystream.domain.events import Envelope, looks_like_card_number
from polystream.domain.examples import example_event
from polystream.settings import Settings

SECRET = b"test-audit-secret"

# Cheap argon2id parameters: the tests need real hashes in events, not real hashing cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def uuid7_at(moment: datetime) -> UUID:
    """A UUIDv7 whose embedded time is ``moment`` (to place documents in a chosen month)."""
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = rand >> 68 & 0xFFF, rand & ((1 << 62) - 1)
    return UUID(int=epoch_ms(moment) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)


def event_at(event_type: str, moment: datetime | None = None, **overrides: Any) -> Envelope[Any]:
    """An example event; with ``moment``, both its id and ``occurred_at`` are at that time."""
    if moment is None:
        return example_event(event_type, **overrides)
    env = example_event(event_type, occurred_at=moment, **overrides)
    return env.model_copy(update={"event_id": uuid7_at(moment)})


# Digit runs as a person would type a card number: not part of a longer token (a hex hash, an
# id), which is also how the event contract looks for them in free text.
_CARD_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")


def card_like_runs(text: str) -> list[str]:
    """Luhn-valid 13-19 digit numbers anywhere in ``text`` (e.g. a JSON dump of an index)."""
    return [run for run in _CARD_IN_TEXT.findall(text) if looks_like_card_number(run)]


def now_utc() -> datetime:
    return datetime.now(UTC)


def make_index(kind: str, tmp_path: Path, settings: Settings, unique: str) -> AuditIndex:
    if kind == "memory":
        return InMemoryAuditIndex(retention_days=30)
    if kind == "jsonl":
        return JsonlAuditIndex(tmp_path / "audit", retention_days=30, fsync=False)
    from polystream.audit.opensearch import OpenSearchAuditIndex

    os_settings = settings.opensearch.model_copy(update={"index_prefix": f"test-audit-{unique}"})
    return OpenSearchAuditIndex(os_settings, retention_days=30)


def drop(index: AuditIndex) -> None:
    from polystream.audit.opensearch import OpenSearchAuditIndex

    if isinstance(index, OpenSearchAuditIndex):
        index.drop_everything()
    index.close()


@pytest.fixture(params=["memory", "jsonl", pytest.param("opensearch", marks=pytest.mark.stack)])
def index(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings,
          unique: str) -> Iterator[AuditIndex]:
    idx = make_index(request.param, tmp_path, settings, unique)
    idx.ensure()
    try:
        yield idx
    finally:
        drop(idx)
