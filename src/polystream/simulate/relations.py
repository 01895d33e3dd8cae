"""Relations between titles ("similar", franchise order): derived at launch, then changed."""

from __future__ import annotations

from typing import Any

from polystream.domain import events as ev
from polystream.simulate.actor import Actor
from polystream.simulate.catalog import Relation, SimTitle, jaccard
from polystream.simulate.wire import HOUR_MS


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
