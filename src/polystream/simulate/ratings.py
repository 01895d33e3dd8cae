"""Ratings follow what is watched: stars from the title's quality and the user's taste; a
few come with a review, a few are retracted later."""

from __future__ import annotations

from polystream.domain import events as ev
from polystream.simulate import vocabulary as vocab
from polystream.simulate.actor import Actor
from polystream.simulate.catalog import SimTitle
from polystream.simulate.state import User
from polystream.simulate.taste import affinity
from polystream.simulate.wire import DAY_MS, HOUR_MS


class Ratings(Actor):
    def on_rate(self, t: int, arg: tuple[User, SimTitle]) -> None:
        user, title = arg
        if user.erasing or title.removed:
            return
        rng = self.rng
        score = title.quality + 0.9 * (affinity(user, title) - 1.0) + rng.gauss(0.0, 0.9)
        stars = min(5, max(1, round(score)))
        review = "null"
        if rng.random() < self.b.review_share:
            review = f'"{rng.choice(vocab.REVIEWS[stars])}"'
        user.ratings[title.title_id] = stars
        payload = (
            f'{{"user_id":"{user.user_id}","title_id":"{title.title_id}","stars":{stars},'
            f'"review":{review}}}'
        )
        self._emit(ev.RatingSubmitted, t, user.user_id, self._trace(), payload)
        if rng.random() < self.b.retract_share:
            self._at(t + self._between(HOUR_MS, 30 * DAY_MS), self._on_retract, (user, title))

    def _on_retract(self, t: int, arg: tuple[User, SimTitle]) -> None:
        user, title = arg
        if user.erasing or title.title_id not in user.ratings:
            return
        del user.ratings[title.title_id]
        payload = f'{{"user_id":"{user.user_id}","title_id":"{title.title_id}"}}'
        self._emit(ev.RatingRetracted, t, user.user_id, self._trace(), payload)
