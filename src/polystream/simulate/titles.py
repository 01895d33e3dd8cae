"""The catalogue over time: published at launch (titles, images, relations), then edited,
extended with new releases and pruned when licences expire."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Generator
from typing import Any

from polystream.domain import events as ev
from polystream.domain.events import AssetKind, ImageType
from polystream.simulate import vocabulary as vocab
from polystream.simulate.actor import Actor, Stage
from polystream.simulate.catalog import SimTitle, imported_catalog, new_episode
from polystream.simulate.posters import image_png
from polystream.simulate.relations import Relations, derive_relations
from polystream.simulate.sampling import TitleSampler
from polystream.simulate.synthetic import synopsis, synthetic_catalog
from polystream.simulate.wire import DAY_MS, HOUR_MS, SimEvent, from_ms


class Titles(Actor):
    def __init__(self, stage: Stage, relations: Relations) -> None:
        super().__init__(stage)
        self.relations = relations
        self.latest_year = stage.config.start.year
        self._people: tuple[list[str], list[str]] | None = None

    def publish(self) -> Generator[SimEvent, None, int]:
        """Publish the catalogue, one event per simulated millisecond; returns the next free
        millisecond.

        A generator, so a consumer measuring throughput counts the (validated, slower)
        catalogue events as they are made rather than after all of them.
        """
        rng = self.rng
        config = self.config
        drain = self.stage.emitter.drain
        t = self.stage.start_ms
        if config.catalog is not None:
            self.world.set_titles(imported_catalog(rng, config.catalog))
        else:
            self.world.set_titles(
                synthetic_catalog(rng, config.titles, t_ms=t, latest_year=self.latest_year)
            )
        titles = self.world.titles
        trace = self._trace()
        # Titles first, then their images, then the relations between them: a relation
        # never points at a title that has not been published yet.
        for title in titles:
            self._emit_validated(ev.TitleUpserted, t, trace, title.payload)
            t += 1
            yield from drain()
        if config.posters:
            for title in titles:
                t = self._assets(t, title, trace)
                yield from drain()
        for a, b, kind, weight in derive_relations(rng, titles):
            self.world.relations[(a, b, kind)] = weight
            self.relations.emit_added(t, trace, (a, b, kind, weight))
            t += 1
            yield from drain()
        return t

    def _assets(self, t: int, title: SimTitle, trace: str, step: int = 1) -> int:
        # step 0 outside the bootstrap: an action emits at its own time only, or a later
        # action on the heap could emit an earlier time after it.
        kinds = [AssetKind.POSTER]
        if self.rng.random() < 0.25:
            kinds.append(AssetKind.BACKDROP)
        for kind in kinds:
            data = image_png(self.rng, kind)
            payload = {
                "asset_id": self._id(t),
                "title_id": title.title_id,
                "kind": kind.value,
                "content_type": ImageType.PNG.value,
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "data_base64": base64.b64encode(data).decode("ascii"),
            }
            self._emit_validated(ev.AssetUploaded, t, trace, payload)
            t += step
        return t

    def on_edit(self, t: int, _: Any) -> None:
        self.recur(t, self.b.catalog_edit_hours * HOUR_MS, self.on_edit)
        sampler = self.world.sampler
        if not sampler.live:
            return
        rng = self.rng
        title = sampler.pick(rng)
        payload = dict(title.payload)
        payload["version"] = title.version + 1
        roll = rng.random()
        if title.is_series and roll < 0.35:
            payload["seasons"] = self._more_episodes(title, payload["seasons"])
        elif roll < 0.65:
            missing = [
                s for s in vocab.SUBTITLE_LANGUAGES if s not in payload["subtitle_languages"]
            ]
            if missing and len(payload["subtitle_languages"]) < 20:
                payload["subtitle_languages"] = [
                    *payload["subtitle_languages"],
                    rng.choice(missing),
                ]
            else:
                payload["synopsis"] = synopsis(rng)
        else:
            base = payload.get("synopsis") or synopsis(rng)
            extra = rng.choice(vocab.SYNOPSIS_EXTRA)
            payload["synopsis"] = base if len(base) + len(extra) > 4000 else f"{base} {extra}"
        title.payload = payload
        title.refresh_items()
        self._emit_validated(ev.TitleUpserted, t, self._trace(), payload)

    def _more_episodes(self, title: SimTitle, current: list[Any]) -> list[dict[str, Any]]:
        """The seasons of ``title`` with a new season, or one more episode in the last one."""
        rng = self.rng
        seasons = [dict(season) for season in current]
        if rng.random() < 0.3 and len(seasons) < 100:
            number = max(season["number"] for season in seasons) + 1
            episodes = [
                new_episode(rng, title.title_id, number, episode, 45)
                for episode in range(1, rng.randint(6, 10) + 1)
            ]
            seasons.append({"number": number, "title": None, "episodes": episodes})
        else:
            last = seasons[-1]
            number = max(episode["number"] for episode in last["episodes"]) + 1
            if len(last["episodes"]) < 500:
                last["episodes"] = [
                    *last["episodes"],
                    new_episode(rng, title.title_id, last["number"], number, 45),
                ]
        return seasons

    def _people_pool(self) -> tuple[list[str], list[str]]:
        if self._people is None:
            titles = self.world.titles
            directors = [d for title in titles for d in title.directors]
            actors = [
                member["name"]
                for title in titles
                for member in (title.payload.get("people") or {}).get("cast") or ()
            ]
            self._people = (
                list(dict.fromkeys(directors)) or ["Ines Marchand"],
                list(dict.fromkeys(actors)) or ["Lena Vogt"],
            )
        return self._people

    def on_new_title(self, t: int, _: Any) -> None:
        self.recur(t, self.b.new_title_days * DAY_MS, self.on_new_title)
        rng = self.rng
        world = self.world
        fresh = synthetic_catalog(rng, 1, t_ms=t, latest_year=self.latest_year)[0]
        directors, actors = self._people_pool()
        fresh.payload["people"] = {
            "directors": [rng.choice(directors)],
            "cast": [{"name": name, "character": None}
                     for name in rng.sample(actors, min(len(actors), rng.randint(2, 6)))],
        }  # fmt: skip
        fresh.payload["year"] = from_ms(t).year
        fresh.franchise = None
        # A new release is among the most popular titles for a while.
        fresh.popularity = 1.0 / rng.randint(2, 30)
        world.titles.append(fresh)
        world.by_id[fresh.title_id] = fresh
        world.sampler = TitleSampler(world.titles)
        trace = self._trace()
        self._emit_validated(ev.TitleUpserted, t, trace, fresh.payload)
        if self.config.posters:
            self._at(t + self._between(1000, 60_000), self._on_new_assets, (fresh, trace))
        self._at(t + self._between(60_000, 600_000), self.relations.on_new_title, fresh)

    def _on_new_assets(self, t: int, arg: tuple[SimTitle, str]) -> None:
        title, trace = arg
        if not title.removed:
            self._assets(t, title, trace, step=0)

    def on_removal(self, t: int, _: Any) -> None:
        self.recur(t, self.b.title_removal_days * DAY_MS, self.on_removal)
        world = self.world
        live = world.sampler.live
        if len(live) < 10:
            return
        # Licences that expire are rarely the hits: pick among the less popular half.
        ranked = sorted(live, key=lambda title: title.popularity)[: len(live) // 2]
        candidates = [title for title in ranked if title.watching == 0]
        if not candidates:
            return
        title = candidates[self.rng.randrange(len(candidates))]
        title.removed = True
        world.sampler = TitleSampler(world.titles)
        gone = title.title_id
        world.relations = {k: w for k, w in world.relations.items() if gone not in (k[0], k[1])}
        payload = {"title_id": gone, "version": title.version + 1}
        title.payload = {**title.payload, "version": title.version + 1}
        self._emit_validated(ev.TitleRemoved, t, self._trace(), payload)
