"""Relations between titles (franchise order, same director, similar genres): derived from
the catalogue at launch, then added and removed over time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from random import Random
from typing import Any

from polystream.domain import events as ev
from polystream.simulate.actor import Actor
from polystream.simulate.catalog import SimTitle
from polystream.simulate.wire import HOUR_MS

Relation = tuple[str, str, str, float]
"""(from_title_id, to_title_id, kind, weight)"""


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 0.0


def derive_relations(rng: Random, titles: Sequence[SimTitle]) -> list[Relation]:
    """Franchise order (sequel/prequel/same franchise), shared directors, genre similarity."""
    edges: dict[tuple[str, str, str], float] = {}
    franchises: dict[str, list[SimTitle]] = {}
    directors: dict[str, list[SimTitle]] = {}
    for title in titles:
        if title.franchise:
            franchises.setdefault(title.franchise, []).append(title)
        for name in title.directors[:1]:
            directors.setdefault(name, []).append(title)
    for members in franchises.values():
        ordered = sorted(members, key=lambda t: (t.payload["year"], t.title_id))
        for earlier, later in pairwise(ordered):
            edges[(earlier.title_id, later.title_id, "sequel")] = 1.0
            edges[(later.title_id, earlier.title_id, "prequel")] = 1.0
        for a in ordered:
            for b in ordered:
                if a is not b:
                    edges[(a.title_id, b.title_id, "same_franchise")] = 0.9
    for members in directors.values():
        if len(members) < 2:
            continue
        for title in members:
            others = [m for m in members if m is not title]
            for other in rng.sample(others, min(2, len(others))):
                edges[(title.title_id, other.title_id, "same_director")] = 0.6
    if len(titles) > 1:
        for title in titles:
            sample = rng.sample(list(titles), min(12, len(titles)))
            scored = sorted(
                (
                    (jaccard(title.genres, other.genres), index, other)
                    for index, other in enumerate(sample)
                    if other is not title
                ),
                key=lambda item: (-item[0], item[1]),
            )
            for score, _, other in scored[:3]:
                if score > 0:
                    edges[(title.title_id, other.title_id, "similar")] = round(0.1 + 0.9 * score, 2)
    return [(a, b, kind, weight) for (a, b, kind), weight in edges.items()]


class Relations(Actor):
    def emit_added(self, t: int, trace: str, relation: Relation) -> None:
        a, b, kind, weight = relation
        payload = {"from_title_id": a, "to_title_id": b, "kind": kind, "weight": weight}
        self._emit_validated(ev.RelationAdded, t, trace, payload)

    def on_new_title(self, t: int, title: SimTitle) -> None:
        """Link a new release to up to three similar titles among a dozen live ones."""
        if title.removed:
            return
        others = [o for o in self.world.sampler.live if o is not title]
        scored = sorted(
            ((jaccard(title.genres, o.genres), i, o)
             for i, o in enumerate(self.rng.sample(others, min(12, len(others))))),
            key=lambda item: (-item[0], item[1]),
        )  # fmt: skip
        trace = self._trace()
        for score, _, other in scored[:3]:
            if score <= 0:
                continue
            key = (title.title_id, other.title_id, "similar")
            weight = round(0.1 + 0.9 * score, 2)
            self.world.relations[key] = weight
            self.emit_added(t, trace, (*key, weight))

    def on_change(self, t: int, _: Any) -> None:
        self.recur(t, self.b.relation_change_hours * HOUR_MS, self.on_change)
        rng = self.rng
        relations = self.world.relations
        if relations and rng.random() < 0.4:
            keys = list(relations)
            a, b, kind = keys[rng.randrange(len(keys))]
            del relations[(a, b, kind)]
            payload = {"from_title_id": a, "to_title_id": b, "kind": kind}
            self._emit_validated(ev.RelationRemoved, t, self._trace(), payload)
            return
        sampler = self.world.sampler
        if len(sampler.live) < 2:
            return
        a_title = sampler.pick(rng)
        b_title = sampler.pick(rng)
        if a_title is b_title:
            return
        key = (a_title.title_id, b_title.title_id, "similar")
        weight = round(0.1 + 0.9 * jaccard(a_title.genres, b_title.genres), 2)
        relations[key] = weight
        self.emit_added(t, self._trace(), (*key, weight))
