"""Login sessions per device: login, sliding refresh while active, logout or expiry, and the
next login after a gap drawn from the user's habits."""

from __future__ import annotations

from typing import Any

from polystream.domain import events as ev
from polystream.simulate.actor import Actor, Stage
from polystream.simulate.ratings import Ratings
from polystream.simulate.sampling import ipv4
from polystream.simulate.scheduling import Handler
from polystream.simulate.state import Device, User, can_watch
from polystream.simulate.taste import pick_title
from polystream.simulate.wire import DAY_MS, MINUTE_MS, quote


def _not_connected(t: int, arg: Any) -> None:
    raise RuntimeError("Sessions.watch was not connected to the viewing actor")


class Sessions(Actor):
    def __init__(self, stage: Stage, ratings: Ratings) -> None:
        super().__init__(stage)
        self.ratings = ratings
        #: Starts watching on a device (``Viewing.on_watch``), connected by the engine:
        #: viewing needs sessions as much as sessions need viewing.
        self.watch: Handler = _not_connected
        self.ttl_ms = self.b.session_ttl_s * 1000
        self.refresh_ms = self.b.refresh_every_s * 1000

    def next_login_gap(self, user: User) -> int:
        return max(
            10 * MINUTE_MS,
            self._exp_ms(DAY_MS / (user.logins_per_day * self.b.logins_per_device_day)),
        )

    def on_login(self, t: int, device: Device) -> None:
        user = device.user
        if user.erasing or device.session is not None:
            return
        rng = self.rng
        session_id = self._id(t)
        device.session = session_id
        device.trace = self._trace()
        device.expires = t + self.ttl_ms
        device.last_refresh = t
        payload = (
            f'{{"session_id":"{session_id}","user_id":"{user.user_id}","method":"password",'
            f'"device":{device.json},"ip_address":"{device.ip}",'
            f'"user_agent":{quote(device.user_agent)},"expires_at":"{self._ptime(device.expires)}"}}'
        )
        self._emit(ev.SessionLoginStarted, t, user.user_id, device.trace, payload)
        if not can_watch(user, t) or rng.random() < self.b.browse_only_share:
            end = t + self._between(MINUTE_MS, 15 * MINUTE_MS)
            sampler = self.world.sampler
            if rng.random() < self.b.rate_when_browsing and sampler.live:
                # Rating from the title page, without watching (seen elsewhere).
                self._at(
                    t + self._between(20_000, 50_000),
                    self.ratings.on_rate,
                    (user, pick_title(rng, sampler, user)),
                )
            self.finish(end, device)
        else:
            self._at(t + self._between(20_000, 240_000), self.watch, device)

    def finish(self, t: int, device: Device) -> None:
        """Schedule the end of the device's session: a logout soon, or expiry at expires_at."""
        if self.rng.random() < self.b.logout_share:
            self._at(
                t + self._between(5000, 120_000),
                self._on_end,
                (device, device.session, "logout"),
            )
        else:
            self._at(
                max(t + 1000, device.expires),
                self._on_end,
                (device, device.session, "expired"),
            )

    def _on_end(self, t: int, arg: tuple[Device, str | None, str]) -> None:
        device, session_id, reason = arg
        if device.session is None or device.session != session_id:
            return
        user = device.user
        device.session = None
        payload = f'{{"session_id":"{session_id}","user_id":"{user.user_id}","reason":"{reason}"}}'
        self._emit(ev.SessionEnded, t, user.user_id, device.trace, payload)
        if not user.erasing:
            self._at(t + self.next_login_gap(user), self.on_login, device)

    def touch(self, t: int, device: Device) -> None:
        """Sliding expiry: an active session is refreshed every ``refresh_every_s``."""
        if t - device.last_refresh >= self.refresh_ms:
            device.last_refresh = t
            self._at(t + self._between(100, 900), self._on_refresh, (device, device.session))

    def _on_refresh(self, t: int, arg: tuple[Device, str | None]) -> None:
        device, session_id = arg
        if device.session is None or device.session != session_id:
            return
        if device.kind == "mobile" and self.rng.random() < 0.3:
            device.ip = ipv4(self.rng)
        device.expires = t + self.ttl_ms
        payload = (
            f'{{"session_id":"{session_id}","user_id":"{device.user.user_id}",'
            f'"ip_address":"{device.ip}","expires_at":"{self._ptime(device.expires)}"}}'
        )
        self._emit(ev.SessionRefreshed, t, device.user.user_id, device.trace, payload)
