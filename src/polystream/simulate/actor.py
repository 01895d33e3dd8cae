"""What every actor of the simulation shares: the RNG, the clock, the event buffer, the world.

Each concern (population, billing, sessions, viewing, ratings, titles, relations, flags) is an
:class:`Actor` holding its own handlers. They all draw from the one seeded RNG, so the stream
depends on the order of the draws alone, not on which class makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from polystream.simulate.config import SimConfig
from polystream.simulate.emitter import Emitter
from polystream.simulate.scheduling import Handler, Scheduler
from polystream.simulate.state import World
from polystream.simulate.wire import TimeText, to_ms, trace_text, uuid7_text


@dataclass(frozen=True, slots=True)
class Stage:
    """The shared parts of one run, built once by the engine and handed to every actor."""

    config: SimConfig
    rng: Random
    scheduler: Scheduler
    emitter: Emitter
    world: World
    #: Payload instants: a separate day cache from the envelopes' occurred_at.
    ptime: TimeText

    @classmethod
    def of(cls, config: SimConfig) -> Stage:
        rng = Random(config.seed)
        return cls(config, rng, Scheduler(), Emitter(rng, config.source), World(), TimeText())

    @property
    def start_ms(self) -> int:
        return to_ms(self.config.start)


class Actor:
    """Base of the concerns: short local names for the shared parts and the common draws.

    The names are bound once per actor because the handlers run millions of times.
    """

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.config = stage.config
        self.b = stage.config.behaviour
        self.rng = stage.rng
        self.world = stage.world
        self._at = stage.scheduler.at
        self._emit = stage.emitter.emit
        self._emit_validated = stage.emitter.emit_validated
        self._ptime = stage.ptime

    def _id(self, t: int) -> str:
        return uuid7_text(t, self.rng)

    def _trace(self) -> str:
        return trace_text(self.rng)

    def _between(self, low_ms: int, high_ms: int) -> int:
        return self.rng.randint(low_ms, high_ms)

    def _exp_ms(self, mean_ms: float) -> int:
        # At least a second: two actions of one actor never share a millisecond by accident.
        return max(1000, int(self.rng.expovariate(1.0 / mean_ms)))

    def recur(self, t: int, mean_ms: float, handler: Handler) -> None:
        """Schedule the next run of a recurring action, an exponential gap after ``t``."""
        self._at(t + self._exp_ms(mean_ms), handler, None)
