"""Golden digests of the simulated stream: any change to the bytes it produces fails here.

The digests were recorded on the simulator before it was split into modules (issue 9); a
refactoring of ``polystream.simulate`` must leave every one of them unchanged. A deliberate
change of the workload updates them in the same commit, with the reason in its message.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from polystream.simulate import SimConfig, generate, parse_csv

from .conftest import BUSY, config

_CSV = "\n".join(
    [
        "kind,title,year,genres,languages,maturity_rating,runtime_minutes,seasons,directors,"
        "cast,franchise,popularity",
        "movie,Quiet Harbour,1998,drama|mystery,de,16+,104,,Ines Marchand,"
        "Lena Vogt:Anna|Tomás Rivera,Quiet Harbour,",
        "movie,Quiet Harbour II,2003,drama|mystery,de|en,16+,110,,Ines Marchand,Lena Vogt:Anna,"
        "Quiet Harbour,",
        "series,The Long Orbit,2021,science_fiction|drama,fr|en,13+,,8|10,Aiko Tanaka,"
        '"Aiko Tanaka:Dr. Sen, MD",,50',
        'movie,"Paper Lanterns, Again",2015,comedy|romance,en,all,92,,,,,',
        "series,Night Shift,2019,crime|thriller,en,16+,,6|6|8,Ines Marchand,Lena Vogt,,20",
        "",
    ]
)


def _configs() -> dict[str, tuple[SimConfig, int | None]]:
    imported = tuple(parse_csv(_CSV))
    return {
        "seed1-2k": (config(seed=1), 2_000),
        "seed7-2k": (config(seed=7), 2_000),
        "seed42-2k": (config(seed=42), 2_000),
        "seed1-20k": (config(seed=1), 20_000),
        "seed7-20k": (config(seed=7), 20_000),
        "seed42-20k": (config(seed=42), 20_000),
        "seed7-200k": (config(seed=7), 200_000),
        "busy-80k": (config(seed=3, users=80, titles=40, behaviour=BUSY), 80_000),
        "no-posters": (config(seed=5, users=200, titles=60, posters=False), 20_000),
        "catalog-only": (config(seed=11, titles=120, catalog_only=True), None),
        "imported": (config(seed=2, users=150, catalog=imported), 20_000),
        "imported-busy": (config(seed=4, users=60, catalog=imported, behaviour=BUSY), 40_000),
        "real-hash-start": (
            replace(
                SimConfig(seed=13, users=50, titles=30, password="s3cret-golden"),
                start=datetime(2024, 2, 29, 23, 30, tzinfo=UTC),
            ),
            5_000,
        ),
    }


#: name -> (events, sha256), recorded on the unsplit engine (commit 5aec5ad).
GOLDEN: dict[str, tuple[int, str]] = {
    "busy-80k": (80000, "13c0d515ea3e4009759faa46d4e10d04cd318a487b02b5400274ba04651da030"),
    "catalog-only": (851, "cb01d0e499410cd92d3d0903a36a8a0cbe152878bef9a3d8364d9cec73f3f61e"),
    "imported": (20000, "dd3cac3d27c16770da4a04101fa4ce70810b2e04c79c73d738fefca02f3229eb"),
    "imported-busy": (40000, "8b9bee1631f586a34b88fb76bf29b309271a38ce709dcdeec2b88aca99464ebf"),
    "no-posters": (20000, "2bf957fa5cfdc7bf353d02242a514889e7bd4145515bddafeeb2c79b8588b0ef"),
    "real-hash-start": (5000, "95ff8745c11420d9b07e6e799cc98506309cad11b2f12397470b8b33f2ad0567"),
    "seed1-20k": (20000, "e82952c0acf2b8643229898f268ba3b0d64dc723eb516588454802d07146b510"),
    "seed1-2k": (2000, "eb6a141fc8d828b193903dd1d899e8477fed4a4e6dc9ee642499604cf99a6640"),
    "seed42-20k": (20000, "abfbc4c3a31350b7f8d4e1bd53908bf05b9e0d50e39eb04a119f4ab64357d9a9"),
    "seed42-2k": (2000, "108e3d18b0bf78bb237b3e95bc58092a64f7aa2806e8f4d89320082374bf11af"),
    "seed7-200k": (200000, "30095cc7ff95f53f35257b1638bfeb3c7d4723a9ee45dc43f605394c25be148c"),
    "seed7-20k": (20000, "1abed72fd361c56e914b465f1d925832761cb7850b815116dee0f2068c7e756d"),
    "seed7-2k": (2000, "bacea2837dcaf96d36515f81392f40e006f7278e56d38c942cf9bdf6cfcca2a5"),
}


def stream_digest(cfg: SimConfig, limit: int | None) -> tuple[int, str]:
    """Count and sha256 of every event's type, topic, key and value, in order."""
    h = hashlib.sha256()
    count = 0
    for event in generate(cfg, limit):
        count += 1
        for part in (event.type.encode(), event.topic.encode(), event.key.encode()):
            h.update(part + b"\x00")
        h.update(event.value + b"\n")
    return count, h.hexdigest()


@pytest.mark.parametrize("name", sorted(_configs()))
def test_the_stream_is_byte_identical_to_the_recorded_one(name: str) -> None:
    cfg, limit = _configs()[name]
    assert stream_digest(cfg, limit) == GOLDEN[name]
