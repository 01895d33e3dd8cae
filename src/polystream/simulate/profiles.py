"""What users change about their account over time: preferences, profile, erasure."""

from __future__ import annotations

from polystream.domain import events as ev
from polystream.simulate import vocabulary as vocab
from polystream.simulate.actor import Actor, Stage
from polystream.simulate.billing import Billing
from polystream.simulate.sampling import GENRES, MATURITY_LIMITS, pick_country
from polystream.simulate.state import ENDED, User
from polystream.simulate.wire import DAY_MS, HOUR_MS, json_bool, json_list, quote, quote_opt


class Profiles(Actor):
    def __init__(self, stage: Stage, billing: Billing) -> None:
        super().__init__(stage)
        self.billing = billing
        self._email_changes = 0

    def on_preferences(self, t: int, user: User) -> None:
        if user.erasing:
            return
        rng = self.rng
        self._at(
            t + self._exp_ms(self.b.preferences_update_days * DAY_MS), self.on_preferences, user
        )
        if rng.random() < 0.3:
            # Taste drifts: a new favourite joins, the oldest may leave.
            genre = GENRES.pick(rng)
            if genre not in user.favorites:
                user.favorites = [genre, *user.favorites][:4]
                user.taste[genre] = 1.8
        subtitles = rng.random() < 0.4
        language = user.languages[0]
        payload = (
            f'{{"user_id":"{user.user_id}","genres":{json_list(user.favorites)},'
            f'"languages":{json_list(user.languages)},"subtitles":{json_bool(subtitles)},'
            f'"subtitle_language":{quote_opt(language if subtitles else None)},'
            f'"autoplay_next_episode":{json_bool(rng.random() < 0.85)},'
            f'"autoplay_previews":{json_bool(rng.random() < 0.5)},'
            f'"maturity_limit":"{MATURITY_LIMITS.pick(rng)}"}}'
        )
        self._emit(ev.PreferencesUpdated, t, user.user_id, self._trace(), payload)

    def on_profile(self, t: int, user: User) -> None:
        if user.erasing:
            return
        rng = self.rng
        self._at(t + self._exp_ms(self.b.profile_update_days * DAY_MS), self.on_profile, user)
        email = display_name = country = birth_year = "null"
        roll = rng.random()
        if roll < 0.5:
            user.display_name = f"{user.first[0]} {user.last[0]}"[:80]
            display_name = quote(user.display_name)
        elif roll < 0.75:
            user.country, user.languages = pick_country(rng)
            country = f'"{user.country}"'
        elif roll < 0.9:
            self._email_changes += 1
            # "first.last.N@" never collides with a registration address ("first.lastN@").
            email = (
                f'"{user.first[1]}.{user.last[1]}.{self._email_changes}'
                f'@{rng.choice(vocab.EMAIL_DOMAINS)}"'
            )
        else:
            user.birth_year = max(1900, user.birth_year + rng.choice((-1, 1)))
            birth_year = str(user.birth_year)
        payload = (
            f'{{"user_id":"{user.user_id}","email":{email},"display_name":{display_name},'
            f'"country":{country},"birth_year":{birth_year}}}'
        )
        self._emit(ev.UserProfileUpdated, t, user.user_id, self._trace(), payload)

    def on_erase(self, t: int, user: User) -> None:
        if user.erasing:
            return
        if user.streams or any(device.session for device in user.devices):
            # Erasure is requested from a quiet account (support desk); try again later.
            self._at(t + self._between(HOUR_MS, 6 * HOUR_MS), self.on_erase, user)
            return
        user.erasing = True
        trace = self._trace()
        sub = user.sub
        if sub is not None and sub.status != ENDED:
            sub.status = ENDED
            self.billing.emit_cancel(t, sub, "account_erased", t, trace)
        self._at(t + self._between(1000, 3000), self._on_erased, (user, trace))

    def _on_erased(self, t: int, arg: tuple[User, str]) -> None:
        user, trace = arg
        user.erased = True
        payload = f'{{"user_id":"{user.user_id}","reason":"user_request"}}'
        self._emit(ev.UserErased, t, user.user_id, trace, payload)
