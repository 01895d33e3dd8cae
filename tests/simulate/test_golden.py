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


#: name -> (events, sha256), recorded on the unsplit engine (commit 5aec5ad), then re-recorded
#: once when six event types moved to schema_version 2 (issue 12): the streams of the split
#: engine, with those types' "schema_version":1 read as 2, hash to exactly these.
GOLDEN: dict[str, tuple[int, str]] = {
    "busy-80k": (80000, "5e0a87c81ddb7b6fd501dc1caf299a15f220a14ea998da6d166251992e3db459"),
    "catalog-only": (851, "7856eb09f03571c0a4b2fe6d6136bf849f93b6dbe30ee0dae9d7db0aeffe94bc"),
    "imported": (20000, "3fba071491f6b3252d220611fd9588c436a20b5116439d78ee3bc560bb64eb5d"),
    "imported-busy": (40000, "f6e4ed5b9351deaaad1950addf084790d9d739d27f095fc66d7dc3d0c84cbd9e"),
    "no-posters": (20000, "1cecfbc1dd585ec29a13493c1c935c07d95b59a7d2d54de7305433b02ecdf2c5"),
    "real-hash-start": (5000, "a09a9f5006a1eccebc6539727e0825b1603cf06b3edef4632cf4a1ce757016dc"),
    "seed1-20k": (20000, "3d2f24a15d61b6e7749e449ba560c684107c92e8bee394fc52427419aebe5cb5"),
    "seed1-2k": (2000, "377f78b8875fe5b6c445722ab8f6ad0acb43d0fccbf580c4425b5a0fbe43853d"),
    "seed42-20k": (20000, "bd54c9bae0a0240f67efe69052ada242433dfd6ebd502a6651682f0e8a9d16bc"),
    "seed42-2k": (2000, "42db764d799bfd67221402fa20e0428a2376a5d745944e2d3229ee0e1532f894"),
    "seed7-200k": (200000, "8913f08b0b8a7f2f59eb672fbd39b25e9e4db0add7b59c5a9a74840cc8580f78"),
    "seed7-20k": (20000, "5f0f1cfd301a0b8ef4fa2354c278694ee2e552d78d135bfa1ae25108beb0fe59"),
    "seed7-2k": (2000, "d189c37334667516bb53030388bacf69a2eae68218bc2b6c63617873145f770a"),
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
