"""Where actions put their events: a buffer of :class:`SimEvent` drained after each action.

Hot event types arrive as hand-written payload JSON (:meth:`Emitter.emit`, see ``wire``);
rare, structurally rich ones as dicts validated by the contract's models
(:meth:`Emitter.emit_validated`).
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random
from typing import Any, Final

from polystream.bus.topology import topic_of
from polystream.domain.events import EVENT_TYPES, Payload, spec_of
from polystream.simulate.wire import Encoder, SimEvent, validated_event

_TOPIC: Final = {event_type: topic_of(event_type).value for event_type in EVENT_TYPES}


class Emitter:
    __slots__ = ("_enc", "_rng", "_source", "out")

    def __init__(self, rng: Random, source: str) -> None:
        self._rng = rng
        self._source = source
        self._enc = Encoder(rng, source)
        self.out: list[SimEvent] = []

    def emit(self, model: type[Payload], t: int, key: str, trace: str, payload: str) -> None:
        event_type = model.event_type
        self.out.append(
            SimEvent(event_type, _TOPIC[event_type], key,
                     self._enc.envelope(event_type, t, key, trace, payload))
        )  # fmt: skip

    def emit_validated(
        self, model: type[Payload], t: int, trace: str, payload: dict[str, Any]
    ) -> None:
        value = validated_event(
            model, payload, t_ms=t, rng=self._rng, source=self._source, trace=trace
        )
        key = payload[spec_of(model).key_field]
        self.out.append(SimEvent(model.event_type, _TOPIC[model.event_type], key, value))

    def drain(self) -> Iterator[SimEvent]:
        yield from self.out
        self.out.clear()
