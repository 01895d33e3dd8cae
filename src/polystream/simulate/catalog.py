"""The simulated catalogue's titles: what the workload tracks about each, and the titles of
an imported catalogue made ready for it.

A title in the simulation is a :class:`SimTitle`: its current ``catalog.title_upserted``
payload (as JSON data) plus what the workload needs to know about it — popularity (Zipf),
quality (drives ratings), the flattened list of playable items, and whether it is live.
Synthetic titles come from ``synthetic``, imported files are parsed by ``catalog_import``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, Final

from polystream.domain.events import TitleUpserted
from polystream.simulate import vocabulary as vocab

#: Zipf exponent of title popularity: rank r gets weight 1 / r**s.
ZIPF_EXPONENT: Final = 1.05


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One validated title of an imported catalogue."""

    title: TitleUpserted
    franchise: str | None = None
    popularity: float | None = None


@dataclass(eq=False, slots=True)
class SimTitle:
    """A title as the simulation tracks it (mutable: catalogue edits bump the version)."""

    title_id: str
    payload: dict[str, Any]
    popularity: float
    quality: float
    franchise: str | None = None
    #: (episode_id or None for a movie, duration in seconds), in viewing order.
    items: list[tuple[str | None, int]] = field(default_factory=list)
    removed: bool = False
    #: Viewing sessions currently open on it (a title being watched is never removed).
    watching: int = 0

    @property
    def version(self) -> int:
        return int(self.payload["version"])

    @property
    def genres(self) -> list[str]:
        return list(self.payload["genres"])

    @property
    def is_series(self) -> bool:
        return bool(self.payload["kind"] == "series")

    @property
    def directors(self) -> list[str]:
        people = self.payload.get("people") or {}
        return list(people.get("directors") or ())

    def refresh_items(self) -> None:
        if self.is_series:
            self.items = [
                (episode["episode_id"], episode["runtime_minutes"] * 60)
                for season in self.payload["seasons"]
                for episode in season["episodes"]
            ]
        else:
            self.items = [(None, self.payload["runtime_minutes"] * 60)]


def episode_id(title_id: str, season: int, number: int) -> str:
    # Unique within the series (the contract's requirement) and readable in dashboards.
    return f"s{season:02d}e{number:02d}-{title_id}"[:64]


def new_episode(
    rng: Random, title_id: str, season: int, number: int, runtime: int
) -> dict[str, Any]:
    return {
        "episode_id": episode_id(title_id, season, number),
        "number": number,
        "title": rng.choice(vocab.EPISODE_WORDS),
        "runtime_minutes": max(5, runtime + rng.randint(-6, 6)),
        "synopsis": None,
    }


def assign_popularity(
    rng: Random, titles: list[SimTitle], given: Sequence[float | None] = ()
) -> None:
    """Zipf popularity by a random rank (unless given) and a quality loosely tied to it."""
    ranks = list(range(1, len(titles) + 1))
    rng.shuffle(ranks)
    for index, (title, rank) in enumerate(zip(titles, ranks, strict=True)):
        explicit = given[index] if index < len(given) else None
        title.popularity = explicit if explicit is not None else 1.0 / rank**ZIPF_EXPONENT
        # Popular titles are somewhat better rated on average, with plenty of exceptions.
        bonus = 0.4 if rank <= max(1, len(titles) // 10) else 0.0
        title.quality = min(4.8, max(1.6, rng.gauss(3.4, 0.6) + bonus))


def imported_catalog(rng: Random, entries: Sequence[CatalogEntry]) -> list[SimTitle]:
    titles = [
        SimTitle(
            entry.title.title_id,
            entry.title.model_dump(mode="json"),
            0.0,
            0.0,
            entry.franchise,
        )
        for entry in entries
    ]
    assign_popularity(rng, titles, [entry.popularity for entry in entries])
    for title in titles:
        title.refresh_items()
    return titles
