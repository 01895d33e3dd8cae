"""The people arriving: sign-ups (migrated customers first), their devices and habits, and
what each new user will do next (subscribe, log in, change their account)."""

from __future__ import annotations

import ipaddress

from polystream.domain import events as ev
from polystream.simulate import vocabulary as vocab
from polystream.simulate.actor import Actor, Stage
from polystream.simulate.billing import Billing
from polystream.simulate.config import password_hash
from polystream.simulate.profiles import Profiles
from polystream.simulate.sampling import (
    DEVICE_KINDS,
    GENRES,
    Weighted,
    card,
    ipv4,
    pick_country,
)
from polystream.simulate.sessions import Sessions
from polystream.simulate.state import Device, User
from polystream.simulate.wire import DAY_MS, HOUR_MS, quote


class Population(Actor):
    def __init__(
        self, stage: Stage, billing: Billing, sessions: Sessions, profiles: Profiles
    ) -> None:
        super().__init__(stage)
        self.billing = billing
        self.profiles = profiles
        self.sessions = sessions
        config = stage.config
        # The catalogue needs no users; skip the deliberately slow hash when only it is wanted.
        self.hash = config.password_hash or (
            "" if config.catalog_only else password_hash(config.effective_password, config.seed)
        )
        self.latest_year = config.start.year
        self._device_counts = Weighted((1, 2, 3, 4), self.b.device_weights)
        self._arrivals: list[tuple[int, bool]] = []
        self._next_arrival = 0
        self._serial = 0

    def plan_arrivals(self, t0: int) -> None:
        """Draw every sign-up time from ``t0`` on: migrated customers in the first hour, the
        others front-loaded over ``signup_days``."""
        rng = self.rng
        b = self.b
        users = self.config.users
        existing = round(users * b.existing_share)
        arrivals = []
        for index in range(users):
            if index < existing:
                at = t0 + rng.randrange(HOUR_MS)
            else:
                at = t0 + int(rng.random() ** 1.3 * b.signup_days * DAY_MS)
            arrivals.append((at, index, index < existing))
        # One pending arrival on the heap at a time: a heap of 100k future sign-ups would
        # make every push and pop of the whole run slower.
        self._arrivals = [(at, migrated) for at, _, migrated in sorted(arrivals)]
        self._schedule_arrival()

    def _schedule_arrival(self) -> None:
        if self._next_arrival < len(self._arrivals):
            at, migrated = self._arrivals[self._next_arrival]
            self._next_arrival += 1
            self._at(at, self._on_register, migrated)

    def _new_device(self, user: User) -> Device:
        rng = self.rng
        kind = DEVICE_KINDS.pick(rng)
        if rng.random() < 0.2:
            ip = str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64)))
        else:
            ip = ipv4(rng)
        device_id = f"{kind.replace('_', '-')}-{rng.getrandbits(40):010x}"
        return Device(user, device_id, kind, ip, rng.choice(vocab.DEVICE_AGENTS[kind]))

    def _new_user(self, t: int) -> User:
        rng = self.rng
        self._serial += 1
        user = User(self._serial, self._id(t))
        user.first = rng.choice(vocab.FIRST_NAMES)
        user.last = rng.choice(vocab.LAST_NAMES)
        user.display_name = (
            user.first[0] if rng.random() < 0.6 else f"{user.first[0]} {user.last[0][0]}."
        )
        user.country, user.languages = pick_country(rng)
        user.birth_year = self.latest_year - rng.randint(18, 75)
        favorites: list[str] = []
        while len(favorites) < rng.randint(2, 4):
            genre = GENRES.pick(rng)
            if genre not in favorites:
                favorites.append(genre)
        user.favorites = favorites
        user.taste = {genre: 1.8 for genre in favorites}
        for genre in rng.sample([g for g, _ in vocab.GENRE_WEIGHTS if g not in favorites], 2):
            user.taste[genre] = 0.35
        user.card = card(rng)
        user.logins_per_day = min(4.0, max(0.05, rng.lognormvariate(0.0, 0.7)))
        count = self._device_counts.pick(rng)
        user.devices = [self._new_device(user) for _ in range(count)]
        return user

    def _on_register(self, t: int, migrated: bool) -> None:
        self._schedule_arrival()
        rng = self.rng
        user = self._new_user(t)
        self.world.users.append(user)
        # "+seed": runs with other seeds never claim the same address on a shared stack.
        email = (f"{user.first[1]}.{user.last[1]}{user.serial}+{self.config.seed}"
                 f"@{rng.choice(vocab.EMAIL_DOMAINS)}")  # fmt: skip
        payload = (
            f'{{"user_id":"{user.user_id}","email":"{email}","display_name":'
            f'{quote(user.display_name)},"country":"{user.country}",'
            f'"birth_year":{user.birth_year},"password_hash":"{self.hash}"}}'
        )
        self._emit(ev.UserRegistered, t, user.user_id, self._trace(), payload)
        self._plan_life(t, user, migrated)

    def _plan_life(self, t: int, user: User, migrated: bool) -> None:
        """Schedule what a new user does next: preferences, subscription, logins, changes."""
        rng = self.rng
        b = self.b
        between = self._between
        subscribe = self.billing.on_subscribe
        if rng.random() < 0.85:
            self._at(t + between(20_000, 600_000), self.profiles.on_preferences, user)
        else:
            self._at(
                t + self._exp_ms(b.preferences_update_days * DAY_MS),
                self.profiles.on_preferences,
                user,
            )
        if migrated:
            self._at(t + between(2000, 20_000), subscribe, (user, True))
            first_login = t + between(60_000, 12 * HOUR_MS)
        else:
            roll = rng.random()
            if roll < b.never_subscribe_share:
                first_login = t + between(60_000, 600_000)
            elif roll < b.never_subscribe_share + b.late_subscribe_share:
                self._at(t + between(DAY_MS, 10 * DAY_MS), subscribe, (user, False))
                first_login = t + between(60_000, 600_000)
            else:
                subscribe_at = t + between(60_000, 1_800_000)
                self._at(subscribe_at, subscribe, (user, False))
                first_login = subscribe_at + between(60_000, 1_800_000)
        login = self.sessions.on_login
        self._at(first_login, login, user.devices[0])
        for device in user.devices[1:]:
            self._at(t + self.sessions.next_login_gap(user), login, device)
        self._at(t + self._exp_ms(b.profile_update_days * DAY_MS), self.profiles.on_profile, user)
        if rng.random() < b.erasure_share:
            self._at(t + between(2 * DAY_MS, 90 * DAY_MS), self.profiles.on_erase, user)
