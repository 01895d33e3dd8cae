"""The data every benchmark works on: simulator output, generated once per run and shared.

All of it is deterministic (fixed seeds), so two runs measure the same bytes.
"""

from __future__ import annotations

from functools import cache
from itertools import islice
from typing import Any, Final

from polystream.domain.events import EVENT_TYPES, Envelope, Sink, decode
from polystream.domain.examples import EXAMPLE_PASSWORD_HASH
from polystream.simulate import Behaviour, SimConfig, SimEvent, generate

SEED: Final = 7

#: The traffic mix of ``polystream simulate`` (1,000 users, 300 titles), without the generated
#: posters: a few hundred image events of 5-13 KB would otherwise dominate the bytes of the
#: first 100,000 events. The argon2id hash is given, so no run spends 0.1 s computing it.
STREAM: Final = SimConfig(seed=SEED, posters=False, password_hash=EXAMPLE_PASSWORD_HASH)

#: A population that signs up over two days and rates a lot: the PostgreSQL sink's share of
#: the default mix is ~2.5 %, so the account events would cost ~40 events generated each.
ACCOUNTS: Final = SimConfig(
    seed=SEED,
    users=10_000,
    titles=200,
    posters=False,
    password_hash=EXAMPLE_PASSWORD_HASH,
    behaviour=Behaviour(
        existing_share=0.0,
        signup_days=2.0,
        rate_after_complete=0.9,
        rate_after_partial=0.4,
        rate_when_browsing=0.6,
    ),
)

PG_TYPES: Final = frozenset(t for t, spec in EVENT_TYPES.items() if Sink.POSTGRES in spec.consumers)
PLAYBACK_AND_RATINGS: Final = frozenset(
    t for t in EVENT_TYPES if t.startswith(("playback.", "rating."))
)
#: What the Redis sink reads besides playback and ratings: its plans (for the stream limit),
#: titles (genres, removals), flags, login sessions. Applied untimed before the timed part.
REDIS_CONTEXT: Final = frozenset(
    t
    for t, spec in EVENT_TYPES.items()
    if Sink.REDIS in spec.consumers and t not in PLAYBACK_AND_RATINGS
)


@cache
def _stream(count: int) -> tuple[SimEvent, ...]:
    return tuple(generate(STREAM, count))


def stream(count: int) -> tuple[SimEvent, ...]:
    """The first ``count`` events of :data:`STREAM` (a prefix of one cached longer run)."""
    return _stream(_rounded(count))[:count]


def _rounded(count: int) -> int:
    # One generation serves every benchmark: round up so small requests reuse a big run.
    return max(count, 200_000) if count > 20_000 else max(count, 20_000)


def decoded(events: tuple[SimEvent, ...]) -> list[Envelope[Any]]:
    return [decode(event.value) for event in events]


def redis_events(count: int) -> tuple[list[Envelope[Any]], list[Envelope[Any]]]:
    """(context, timed): the Redis sink's other events up to the ``count``-th playback or
    rating event, and those ``count`` events, decoded, in stream order."""
    context: list[SimEvent] = []
    timed: list[SimEvent] = []
    for event in generate(STREAM):
        if event.type in PLAYBACK_AND_RATINGS:
            timed.append(event)
            if len(timed) == count:
                break
        elif event.type in REDIS_CONTEXT:
            context.append(event)
    return [decode(e.value) for e in context], [decode(e.value) for e in timed]


def account_events(count: int) -> list[Envelope[Any]]:
    """The first ``count`` events of :data:`ACCOUNTS` that the PostgreSQL sink consumes."""
    picked = islice((e for e in generate(ACCOUNTS) if e.type in PG_TYPES), count)
    return [decode(event.value) for event in picked]


def new_titles(count: int) -> list[Envelope[Any]]:
    """``count`` ``catalog.title_upserted`` events of distinct, new titles (a catalogue load)."""
    config = SimConfig(
        seed=SEED,
        titles=count,
        users=1,
        posters=False,
        catalog_only=True,
        password_hash=EXAMPLE_PASSWORD_HASH,
    )
    titles = [e for e in generate(config) if e.type == "catalog.title_upserted"]
    assert len({e.key for e in titles}) == len(titles) == count
    return [decode(event.value) for event in titles]
