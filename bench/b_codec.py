"""1. Event codec: ``events.decode`` + ``events.encode`` against ``json.loads`` + ``json.dumps``."""

from __future__ import annotations

import json
from json import dumps, loads
from typing import Any, Final

from bench import data
from bench.core import Sample, Stopwatch, Variant
from polystream.domain.events import decode, encode

SEPARATORS: Final = (",", ":")


class CodecBench:
    name = "codec"
    title = "Event codec (decode + encode)"
    unit = "events/s"

    def __init__(self, quick: bool) -> None:
        self.count = 5_000 if quick else 50_000
        self.values: list[bytes] = []

    def describe(self) -> str:
        return (
            "Round trip of simulator events (default mix, no posters): polystream's "
            "decode (header model, then full pydantic validation of the one envelope model) "
            "and encode (pydantic serializer) versus json.loads + json.dumps of the same "
            "bytes into and out of plain dicts (no validation). One core, no I/O."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count}

    def setup(self) -> None:
        self.values = [event.value for event in data.stream(self.count)]
        # Warm both paths (pydantic builds its validators lazily on first use of a type).
        for value in self.values[:2_000]:
            encode(decode(value))
            json.dumps(json.loads(value))

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, "encode(decode(value)) per event"),
            Variant(
                "baseline",
                "baseline",
                self._baseline,
                "json.dumps(json.loads(value), compact, UTF-8).encode() per event",
            ),
        ]

    def _ours(self, rep: int) -> Sample:
        values = self.values
        with Stopwatch() as watch:
            out = [encode(decode(value)) for value in values]
        # The wire format is canonical: what the simulator wrote is what encode writes back.
        mismatched = sum(a != b for a, b in zip(values, out, strict=True))
        problems = [f"{mismatched} events re-encoded differently"] if mismatched else []
        return Sample.of(len(values), watch, problems, bytes=sum(map(len, values)))

    def _baseline(self, rep: int) -> Sample:
        values = self.values
        with Stopwatch() as watch:
            out = [
                dumps(loads(value), separators=SEPARATORS, ensure_ascii=False).encode()
                for value in values
            ]
        return Sample.of(len(out), watch, bytes=sum(map(len, values)))

    def teardown(self) -> None:
        self.values = []
