"""Feature flags: the global ones set at launch, then one flag changed now and then."""

from __future__ import annotations

from typing import Any, Final

from polystream.domain import events as ev
from polystream.simulate.actor import Actor
from polystream.simulate.wire import HOUR_MS

#: The first five are global and set at launch; the experiment targets single users.
FLAGS: Final = (
    "player.next-episode-countdown", "ui.home-layout", "runtime.heartbeat-seconds",
    "runtime.max-bitrate-kbps", "ops.maintenance-banner", "experiment.new-recommendations",
)  # fmt: skip


class Flags(Actor):
    def launch(self, t: int) -> int:
        """Set the global flags, one per millisecond from ``t``; the next free millisecond."""
        for name in FLAGS[:5]:
            self._emit_flag(t, name)
            t += 1
        return t

    def on_change(self, t: int, _: Any) -> None:
        self.recur(t, self.b.flag_change_hours * HOUR_MS, self.on_change)
        self._emit_flag(t, self.rng.choice(FLAGS))

    def _emit_flag(self, t: int, name: str) -> None:
        value, scope = self._value_and_scope(name)
        payload = {"name": name, "value": value, "scope": scope}
        self._emit_validated(ev.FlagSet, t, self._trace(), payload)

    def _value_and_scope(self, name: str) -> tuple[Any, str]:
        rng = self.rng
        if name == "player.next-episode-countdown":
            return {"enabled": rng.random() < 0.8, "seconds": rng.randint(5, 15)}, "global"
        if name == "ui.home-layout":
            return rng.choice(("rows", "grid", "hero")), "global"
        if name == "runtime.heartbeat-seconds":
            return self.b.heartbeat_s, "global"
        if name == "runtime.max-bitrate-kbps":
            return rng.choice((4000, 8000, 16000, 25000)), "global"
        if name == "ops.maintenance-banner":
            return (None if rng.random() < 0.7 else "Scheduled maintenance tonight"), "global"
        # Per-user experiments target recent sign-ups still around.
        live = [user for user in self.world.users[-500:] if not user.erasing]
        if live:
            user = live[rng.randrange(len(live))]
            return rng.random() < 0.5, f"user:{user.user_id}"
        return False, "global"
