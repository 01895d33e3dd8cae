"""Playback: what a logged-in device watches, its heartbeats, how it stops and what follows
(autoplay, another title, a rating, the end of the session).

Concurrent streams respect the plan's limit, except for a few attempts that the player
reports as stopped with ``stream_limit``.
"""

from __future__ import annotations

from polystream.domain import events as ev
from polystream.domain.events import PLANS, PlanCode
from polystream.simulate.actor import Actor, Stage
from polystream.simulate.catalog import SimTitle
from polystream.simulate.ratings import Ratings
from polystream.simulate.sessions import Sessions
from polystream.simulate.state import Device, Viewing, can_watch
from polystream.simulate.taste import pick_title
from polystream.simulate.wire import MINUTE_MS


class Viewings(Actor):
    def __init__(self, stage: Stage, sessions: Sessions, ratings: Ratings) -> None:
        super().__init__(stage)
        self.sessions = sessions
        self._finish = sessions.finish
        self._touch = sessions.touch
        self._rate = ratings.on_rate
        self.hb_ms = self.b.heartbeat_s * 1000
        self.refresh_ms = sessions.refresh_ms

    def on_watch(self, t: int, device: Device) -> None:
        user = device.user
        if device.session is None or user.erasing:
            return
        sampler = self.world.sampler
        if not can_watch(user, t) or not sampler.live:
            self._finish(t, device)
            return
        rng = self.rng
        self._touch(t, device)
        sub = user.sub
        assert sub is not None  # can_watch
        if user.streams >= PLANS[PlanCode(sub.plan)].max_streams:
            if rng.random() >= self.b.over_limit_attempt_share:
                # The app says "too many screens": try again later, or give up for now.
                if rng.random() < 0.5:
                    self._at(
                        t + self._between(10 * MINUTE_MS, 30 * MINUTE_MS), self.on_watch, device
                    )
                else:
                    self._finish(t, device)
                return
            viewing = self._open(t, device, pick_title(rng, sampler, user), counted=False)
            viewing.stop_pos = viewing.start_pos
            viewing.reason = "stream_limit"
            self._at(t + self._between(500, 3000), self._on_stop, viewing)
            return
        title: SimTitle | None = None
        if user.progress and rng.random() < 0.5:
            title = self.world.by_id.get(next(reversed(user.progress)))
            if title is not None and title.removed:
                del user.progress[title.title_id]
                title = None
        if title is None:
            title = pick_title(rng, sampler, user)
        self._start(t, device, title)

    def _on_watch_next(self, t: int, arg: tuple[Device, SimTitle]) -> None:
        device, title = arg
        user = device.user
        if device.session is None or user.erasing or title.removed or not can_watch(user, t):
            if device.session is not None:
                self._finish(t, device)
            return
        sub = user.sub
        assert sub is not None
        if user.streams >= PLANS[PlanCode(sub.plan)].max_streams:
            self._finish(t, device)
            return
        self._touch(t, device)
        self._start(t, device, title)

    def _open(self, t: int, device: Device, title: SimTitle, *, counted: bool) -> Viewing:
        user = device.user
        item, pos = user.progress.get(title.title_id, (0, 0))
        if item >= len(title.items):
            item, pos = 0, 0
        episode_id, duration = title.items[item]
        if pos >= duration:
            pos = 0
        viewing = Viewing(device, title, item, pos)
        viewing.counted = counted
        viewing.trace = self._trace()
        episode = "null" if episode_id is None else f'"{episode_id}"'
        viewing.head = (
            f'{{"viewing_session_id":"{self._id(t)}","user_id":"{user.user_id}",'
            f'"title_id":"{title.title_id}","episode_id":{episode},"position_seconds":'
        )
        viewing.tail = f',"duration_seconds":{duration},"device":{device.json}'
        self._emit(
            ev.PlaybackStarted, t, user.user_id, viewing.trace,
            f"{viewing.head}{pos}{viewing.tail}}}",
        )  # fmt: skip
        title.watching += 1  # over-limit attempts too: a title is never removed mid-stream
        if counted:
            user.streams += 1
        return viewing

    def _start(self, t: int, device: Device, title: SimTitle) -> None:
        rng = self.rng
        viewing = self._open(t, device, title, counted=True)
        duration = title.items[viewing.item][1]
        remaining = duration - viewing.start_pos
        if rng.random() < self.b.complete_share:
            viewing.stop_pos = duration
            viewing.reason = "completed"
        else:
            watched = max(60, int(remaining * rng.betavariate(1.3, 2.2)))
            viewing.stop_pos = min(duration, viewing.start_pos + watched)
            roll = rng.random()
            viewing.reason = (
                "completed" if viewing.stop_pos == duration
                else "error" if roll < 0.015 else "idle_timeout" if roll < 0.05 else "user"
            )  # fmt: skip
        self._schedule_next_beat(t, viewing)

    def _schedule_next_beat(self, t: int, viewing: Viewing) -> None:
        if viewing.pos + self.b.heartbeat_s < viewing.stop_pos:
            self._at(t + self.hb_ms, self._on_beat, viewing)
        else:
            self._at(t + (viewing.stop_pos - viewing.pos) * 1000, self._on_stop, viewing)

    def _on_beat(self, t: int, viewing: Viewing) -> None:
        # The hot path: most events are heartbeats. Keep it to one f-string and one push.
        viewing.pos += self.b.heartbeat_s
        device = viewing.device
        self._emit(
            ev.PlaybackProgress, t, device.user.user_id, viewing.trace,
            f"{viewing.head}{viewing.pos}{viewing.tail}}}",
        )  # fmt: skip
        if t - device.last_refresh >= self.refresh_ms:
            self._touch(t, device)
        self._schedule_next_beat(t, viewing)

    def _on_stop(self, t: int, viewing: Viewing) -> None:
        device = viewing.device
        user = device.user
        title = viewing.title
        viewing.pos = viewing.stop_pos
        self._emit(
            ev.PlaybackStopped, t, user.user_id, viewing.trace,
            f'{viewing.head}{viewing.pos}{viewing.tail},"reason":"{viewing.reason}"}}',
        )  # fmt: skip
        title.watching -= 1
        if not viewing.counted:
            if device.session is not None:
                self._finish(t, device)
            return
        user.streams -= 1
        completed = viewing.reason == "completed"
        next_item = self._remember_progress(viewing, completed)
        delay = self._maybe_rate(t, viewing, completed)
        if device.session is None or user.erasing:
            return
        rng = self.rng
        b = self.b
        if viewing.reason == "error" and rng.random() < 0.6:
            self._at(t + delay + self._between(5000, 30_000), self._on_watch_next, (device, title))
        elif (
            completed
            and title.is_series
            and next_item < len(title.items)
            and rng.random() < b.autoplay_next_share
        ):
            self._at(t + delay + self._between(8000, 15_000), self._on_watch_next, (device, title))
        elif rng.random() < b.another_viewing_share:
            self._at(t + delay + self._between(30_000, 900_000), self.on_watch, device)
        else:
            self._finish(t + delay, device)

    @staticmethod
    def _remember_progress(viewing: Viewing, completed: bool) -> int:
        """Update "continue watching" after a viewing; the item to watch next."""
        title = viewing.title
        progress = viewing.device.user.progress
        progress.pop(title.title_id, None)
        next_item = viewing.item + 1 if completed else viewing.item
        if next_item < len(title.items):
            progress[title.title_id] = (next_item, 0 if completed else viewing.pos)
            if len(progress) > 20:
                del progress[next(iter(progress))]
        return next_item

    def _maybe_rate(self, t: int, viewing: Viewing, completed: bool) -> int:
        """Perhaps schedule a rating of what was watched; the delay before it (0: none)."""
        b = self.b
        title = viewing.title
        duration = title.items[viewing.item][1]
        watched = viewing.pos - viewing.start_pos
        chance = b.rate_after_complete if completed else (
            b.rate_after_partial if watched * 5 >= duration else 0.0
        )  # fmt: skip
        if title.is_series:
            chance /= 3  # people rate a series once in a while, not every episode
        if chance and self.rng.random() < chance:
            delay = self._between(5000, 90_000)
            self._at(t + delay, self._rate, (viewing.device.user, title))
            return delay
        return 0
