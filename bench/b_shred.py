"""Crypto-shredding: what sealing (producer) and opening (consumer) add to the codec."""

from __future__ import annotations

from typing import Any

from bench import data
from bench.core import Sample, Stopwatch, Variant
from polystream.domain.events import decode
from polystream.shred.bus import KeyCache, open_values
from polystream.shred.fields import seal
from polystream.shred.keys import MemoryKeyStore


class ShredBench:
    name = "shred"
    title = "Crypto-shredding (seal + open + decode)"
    unit = "events/s"

    def __init__(self, quick: bool) -> None:
        self.count = 5_000 if quick else 50_000
        self.values: list[bytes] = []
        self.sealed: list[bytes] = []
        self.keys = KeyCache(MemoryKeyStore())

    def describe(self) -> str:
        return (
            "Simulator events (default mix, no posters): the personal fields sealed with "
            "AES-256-GCM under per-user keys, then opened by the consumer in batches of 500 "
            "(one key lookup per batch, keys cached in memory) and decoded, against decoding "
            "the plain records. One core, no I/O: the key store's round trips are not counted "
            "(one per user's first event on a producer, one per batch with an unseen user on "
            "a consumer)."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count}

    def setup(self) -> None:
        self.values = [event.value for event in data.stream(self.count)]
        self.sealed = [seal(v, self.keys.for_sealing) for v in self.values]
        for value in self.values[:2_000]:
            decode(value)

    def variants(self) -> list[Variant]:
        # The ratio compares the consumer's path with and without shredding; sealing (the
        # producer's side) has no plain counterpart, so it is reported as a reference.
        return [
            Variant("open+decode", "ours", self._open, "open_values per 500, then decode"),
            Variant("decode", "baseline", self._decode, "decode(value) of the plain record"),
            Variant("seal", "reference", self._seal, "seal(value) per event (producer side)"),
        ]

    def _seal(self, rep: int) -> Sample:
        with Stopwatch() as watch:
            out = [seal(v, self.keys.for_sealing) for v in self.values]
        return Sample.of(len(out), watch, bytes=sum(map(len, out)))

    def _open(self, rep: int) -> Sample:
        sealed = self.sealed
        with Stopwatch() as watch:
            events = [decode(v) for i in range(0, len(sealed), 500)
                      for v in open_values(sealed[i:i + 500], self.keys)]
        plain = [decode(v) for v in self.values]
        wrong = sum(a != b for a, b in zip(events, plain, strict=True))
        return Sample.of(len(events), watch, [f"{wrong} events differ"] if wrong else [],
                         bytes=sum(map(len, sealed)))

    def _decode(self, rep: int) -> Sample:
        with Stopwatch() as watch:
            events = [decode(v) for v in self.values]
        return Sample.of(len(events), watch, bytes=sum(map(len, self.values)))

    def teardown(self) -> None:
        self.values = []
        self.sealed = []
