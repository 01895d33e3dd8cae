"""A small catalog for the read tests: titles of every kind, genre mix, year and rating, a
relations graph two hops deep, and a poster."""

from __future__ import annotations

from typing import Any

from polystream.domain.events import AnyEvent, Envelope, TitleUpserted, new_event
from polystream.domain.examples import example_payload, image_asset, movie_title, png_image

# (id, kind, title, year, genres, maturity)
TITLES: list[tuple[str, str, str, int, list[str], str]] = [
    ("t01", "movie", "Night Harbour", 2021, ["drama", "crime"], "16+"),
    ("t02", "movie", "Night Harbour 2", 2023, ["drama", "crime"], "16+"),
    ("t03", "series", "Orbit Station", 2021, ["science_fiction"], "13+"),
    ("t04", "movie", "The Quiet Field", 1999, ["drama"], "all"),
    ("t05", "movie", "Laugh Track", 2010, ["comedy"], "7+"),
    ("t06", "series", "Laugh Track: The Series", 2012, ["comedy"], "7+"),
    ("t07", "movie", "Blood Moon", 2015, ["horror"], "18+"),
    ("t08", "movie", "Harbour Lights", 2021, ["drama", "romance"], "13+"),
    ("t09", "movie", "Zebra Crossing", 2005, ["family", "comedy"], "all"),
    ("t10", "movie", "Alpha Protocol", 2019, ["action", "thriller"], "16+"),
    ("t11", "movie", "Removed Title", 2020, ["drama"], "all"),
    ("t12", "movie", "Far Away", 2001, ["drama"], "13+"),
]
# (from, to, kind, weight): t01 - t02 - t08 - t12 chain, t01 - t04, t03 alone.
RELATIONS = [
    ("t01", "t02", "sequel", 0.9),
    ("t04", "t01", "similar", 0.4),
    ("t02", "t08", "similar", 0.5),
    ("t08", "t12", "similar", 0.8),
    ("t02", "t11", "similar", 0.7),
    ("t05", "t06", "same_franchise", 1.0),
]
POSTER = png_image(3, 3, (10, 120, 200))


def title_event(title_id: str, version: int = 1, **overrides: Any) -> Envelope[Any]:
    row = next(t for t in TITLES if t[0] == title_id)
    _, kind, name, year, genres, maturity = row
    fields: dict[str, Any] = {"title_id": title_id, "version": version, "title": name,
                              "year": year, "genres": genres, "maturity_rating": maturity,
                              **overrides}
    payload = (
        movie_title(**fields) if kind == "movie" else example_payload(TitleUpserted, **fields)
    )
    return new_event(payload, source="reads-test")


def catalog_events() -> list[AnyEvent]:
    events: list[AnyEvent] = [title_event(t[0]) for t in TITLES]
    events.append(new_event(example_payload("catalog.title_removed", title_id="t11",
                                            version=2), source="reads-test"))
    for source, target, kind, weight in RELATIONS:
        events.append(new_event(example_payload(
            "catalog.relation_added", from_title_id=source, to_title_id=target, kind=kind,
            weight=weight), source="reads-test"))
    events.append(new_event(image_asset(POSTER, asset_id="a-poster-t01", title_id="t01"),
                            source="reads-test"))
    return events


def live_events() -> list[AnyEvent]:
    """Ratings and a public and a private flag for the Redis side."""
    events: list[AnyEvent] = [title_event(t[0]) for t in TITLES]
    for n, (title_id, stars) in enumerate([("t01", 5), ("t02", 4), ("t04", 2), ("t01", 5)]):
        events.append(new_event(example_payload(
            "rating.submitted", user_id=f"u{n}", title_id=title_id, stars=stars),
            source="reads-test"))
    events.append(new_event(example_payload("flag.set", name="public.banner", value="hello"),
                            source="reads-test"))
    events.append(new_event(example_payload("flag.set", name="billing.retry-max", value=3),
                            source="reads-test"))
    return events
