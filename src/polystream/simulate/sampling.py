"""Weighted draws from the seeded RNG: the vocabulary's tables and the live catalogue.

Every draw consumes the RNG exactly as ``random.choices`` would, so moving a draw between
modules never changes the stream; only the order of the draws does.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from random import Random
from typing import Final, Generic, TypeVar

from polystream.domain.events import PlanCode
from polystream.simulate import vocabulary as vocab
from polystream.simulate.catalog import SimTitle

T = TypeVar("T")


class Weighted(Generic[T]):
    """``rng.choices(items, weights)[0]`` with the cumulative weights computed once.

    Draws exactly like ``random.choices`` (one ``random()`` per pick, bisect over cumulative
    weights), minus rebuilding the tables on every call, which dominated the profile.
    """

    __slots__ = ("_cum", "_hi", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]
        self._hi = len(self._cum) - 1

    @classmethod
    def table(cls, rows: Sequence[tuple[T, int]]) -> Weighted[T]:
        return cls([item for item, _ in rows], [weight for _, weight in rows])

    def pick(self, rng: Random) -> T:
        return self._items[bisect(self._cum, rng.random() * self._total, 0, self._hi)]


class TitleSampler:
    """Weighted choice of a live title by popularity (bisect over cumulative weights).

    Immutable: the catalogue's owner builds a new one whenever titles come or go.
    """

    def __init__(self, titles: list[SimTitle]) -> None:
        self.live = [title for title in titles if not title.removed]
        self.cum = list(accumulate(title.popularity for title in self.live))
        self.total = self.cum[-1] if self.cum else 0.0

    def pick(self, rng: Random) -> SimTitle:
        index = bisect(self.cum, rng.random() * self.total)
        return self.live[min(index, len(self.live) - 1)]


PLAN_CODES: Final = tuple(plan.value for plan in PlanCode)
PLANS_DRAW: Final = Weighted(PLAN_CODES, (30, 45, 25))
CARD_BRANDS: Final = Weighted.table(vocab.CARD_BRAND_WEIGHTS)
DEVICE_KINDS: Final = Weighted.table(vocab.DEVICE_KIND_WEIGHTS)
GENRES: Final = Weighted.table(vocab.GENRE_WEIGHTS)
FAILURES: Final = Weighted.table(vocab.PAYMENT_FAILURE_WEIGHTS)
REFUND_REASONS: Final = Weighted.table(vocab.REFUND_REASON_WEIGHTS)
MATURITY_LIMITS: Final = Weighted(("18+", "16+", "13+"), (85, 10, 5))
_COUNTRIES: Final = Weighted(
    [(country, languages) for country, _, languages in vocab.COUNTRIES],
    [weight for _, weight, _ in vocab.COUNTRIES],
)
_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def pick_country(rng: Random) -> tuple[str, tuple[str, ...]]:
    return _COUNTRIES.pick(rng)


def ipv4(rng: Random) -> str:
    # Documentation ranges (RFC 5737): realistic shape, never a real person's address.
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"


def card(rng: Random) -> tuple[str, str, str]:
    """A tokenised payment card: (token, brand, last four digits); never a card number."""
    token = "tok_" + "".join(rng.choices(_ALNUM, k=24))
    brand = CARD_BRANDS.pick(rng)
    return token, brand, f"{rng.randrange(10_000):04d}"
