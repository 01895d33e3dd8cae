"""The workload: a discrete-event simulation of a streaming platform, deterministic per seed.

Everything happens on a simulated clock (milliseconds since the epoch) that starts at
``SimConfig.start``. Actors schedule their next actions on one heap; the loop pops the earliest
action, which emits events stamped with its time and schedules follow-ups strictly later. So
the stream is in non-decreasing ``occurred_at`` order as a whole, hence per key as well, and
every fact appears after the facts it depends on (a payment after its subscription, playback
after the user registered and the title was published, a rating after the user registered).

Randomness comes from one ``random.Random(seed)``; ids are UUIDv7 built from the simulated time
and that RNG; nothing reads the wall clock. The same configuration therefore yields the same
bytes, and a shorter run is a prefix of a longer one.

Who does what (see docs/simulator.md for the numbers):

* the catalogue is published first (titles, posters, relations), then edited over time;
* users sign up over ``Behaviour.signup_days`` (a share of them are existing customers
  migrated at launch, whose billing periods started before the simulation, so renewals
  begin on day one), set preferences, subscribe, and pay monthly; renewals fail at a
  realistic rate and are retried (dunning) before the subscription is canceled;
* each user has 1-4 devices; a device logs in, watches a few things (heartbeats every
  ``heartbeat_s`` seconds), refreshes its session while active, and logs out or lets the
  session expire; concurrent streams respect the plan's limit, except for a few attempts
  that the player reports as stopped with ``stream_limit``;
* ratings follow what is watched (Zipf popularity times the user's genre taste);
* flags change now and then.

Each concern is an actor in its own module (``population``, ``profiles``, ``billing``,
``sessions``, ``viewing``, ``ratings``, ``titles``, ``relations``, ``flags``); they share the
RNG, the clock (``scheduling``) and the event buffer (``emitter``) through an ``actor.Stage``.
This module wires them and runs the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from polystream.domain.events import AnyEvent, decode
from polystream.simulate.actor import Stage
from polystream.simulate.billing import Billing
from polystream.simulate.config import SimConfig
from polystream.simulate.flags import Flags
from polystream.simulate.population import Population
from polystream.simulate.profiles import Profiles
from polystream.simulate.ratings import Ratings
from polystream.simulate.relations import Relations
from polystream.simulate.sessions import Sessions
from polystream.simulate.titles import Titles
from polystream.simulate.viewing import Viewings
from polystream.simulate.wire import DAY_MS, HOUR_MS, SimEvent


class Simulation:
    """One run of the workload. Iterate :meth:`events` once."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stage = stage = Stage.of(config)
        self.relations = Relations(stage)
        self.titles = Titles(stage, self.relations)
        self.flags = Flags(stage)
        self.billing = Billing(stage)
        self.ratings = Ratings(stage)
        self.sessions = Sessions(stage, self.ratings)
        self.viewings = Viewings(stage, self.sessions, self.ratings)
        self.sessions.watch = self.viewings.on_watch
        self.profiles = Profiles(stage, self.billing)
        self.population = Population(stage, self.billing, self.sessions, self.profiles)

    def events(self) -> Iterator[SimEvent]:
        cursor = yield from self.titles.publish()
        if self.config.catalog_only:
            return
        self._launch(cursor)
        yield from self.stage.scheduler.run(self.stage.emitter.out)

    def _launch(self, cursor: int) -> None:
        """Set the global flags, plan the sign-ups and start the recurring global actions."""
        b = self.config.behaviour
        titles, relations, flags = self.titles, self.relations, self.flags
        t0 = flags.launch(cursor) + 1000
        self.population.plan_arrivals(t0)
        # The order of these draws is part of the stream: changing it changes every event.
        titles.recur(t0, b.catalog_edit_hours * HOUR_MS, titles.on_edit)
        titles.recur(t0, b.new_title_days * DAY_MS, titles.on_new_title)
        relations.recur(t0, b.relation_change_hours * HOUR_MS, relations.on_change)
        titles.recur(t0, b.title_removal_days * DAY_MS, titles.on_removal)
        flags.recur(t0, b.flag_change_hours * HOUR_MS, flags.on_change)


def generate(config: SimConfig, limit: int | None = None) -> Iterator[SimEvent]:
    """The simulated event stream of ``config``: endless unless ``limit`` (or catalog_only).

    Each item is a :class:`SimEvent` (type, topic, key, encoded value), in the order the
    events happened. ``generate(c, n)`` is always a prefix of ``generate(c, m)`` for n < m.
    """
    events = Simulation(config).events()
    return events if limit is None else islice(events, limit)


def generate_envelopes(config: SimConfig, limit: int | None = None) -> Iterator[AnyEvent]:
    """:func:`generate`, decoded with full validation (slower; for tests and tools)."""
    for event in generate(config, limit):
        yield decode(event.value)
