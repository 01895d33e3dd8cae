"""What a user likes: genre taste weighs the popularity draw and the stars given."""

from __future__ import annotations

from random import Random

from polystream.simulate.catalog import SimTitle
from polystream.simulate.sampling import TitleSampler
from polystream.simulate.state import User


def affinity(user: User, title: SimTitle) -> float:
    """Mean of the user's taste over the title's genres (1.0 neutral, 1.8 favourite)."""
    genres = title.payload["genres"]
    taste = user.taste
    return sum(taste.get(genre, 1.0) for genre in genres) / len(genres)


def pick_title(rng: Random, sampler: TitleSampler, user: User) -> SimTitle:
    """Popularity proposes (Zipf), taste disposes: the best-liked of three candidates."""
    pick = sampler.pick
    candidates = [pick(rng), pick(rng), pick(rng)]
    weights = [affinity(user, title) ** 2 for title in candidates]
    return rng.choices(candidates, weights)[0]
