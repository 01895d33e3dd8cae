"""The mutable state of a run: people, their devices, subscriptions and viewings, and the
world they share (catalogue, relations, population).

Plain slotted classes rather than dataclasses: hundreds of thousands of attribute writes per
second go through them on the hot path.
"""

from __future__ import annotations

from typing import Final

from polystream.simulate.catalog import SimTitle
from polystream.simulate.sampling import TitleSampler

# Subscription states. PENDING: started, first payment not captured yet.
PENDING: Final = 0
ACTIVE: Final = 1
PAST_DUE: Final = 2
CANCELING: Final = 3
ENDED: Final = 4


class Sub:
    __slots__ = ("failures", "period_end", "period_start", "plan", "status", "sub_id", "user")

    def __init__(self, sub_id: str, user: User, plan: str) -> None:
        self.sub_id = sub_id
        self.user = user
        self.plan = plan
        self.period_start = 0
        self.period_end = 0
        self.status = PENDING
        self.failures = 0


class Device:
    __slots__ = (
        "device_id", "expires", "ip", "json", "kind", "last_refresh", "session", "trace",
        "user", "user_agent",
    )  # fmt: skip

    def __init__(self, user: User, device_id: str, kind: str, ip: str, user_agent: str) -> None:
        self.user = user
        self.device_id = device_id
        self.kind = kind
        self.json = f'{{"kind":"{kind}","device_id":"{device_id}"}}'
        self.ip = ip
        self.user_agent = user_agent
        self.session: str | None = None
        self.trace = ""
        self.expires = 0
        self.last_refresh = 0


class User:
    __slots__ = (
        "birth_year", "card", "country", "devices", "display_name", "erased", "erasing",
        "favorites", "first", "languages", "last", "logins_per_day", "progress", "ratings",
        "serial", "streams", "sub", "taste", "user_id",
    )  # fmt: skip

    def __init__(self, serial: int, user_id: str) -> None:
        self.serial = serial
        self.user_id = user_id
        self.first: tuple[str, str] = ("", "")
        self.last: tuple[str, str] = ("", "")
        self.display_name = ""
        self.country = ""
        self.languages: tuple[str, ...] = ()
        self.birth_year = 0
        self.taste: dict[str, float] = {}
        self.favorites: list[str] = []
        self.devices: list[Device] = []
        self.sub: Sub | None = None
        self.card: tuple[str, str, str] = ("", "", "")
        self.streams = 0
        # title_id -> stars; dict (not set) so iteration order never depends on hashing.
        self.ratings: dict[str, int] = {}
        # title_id -> (item index, position): continue watching, most recent last.
        self.progress: dict[str, tuple[int, int]] = {}
        self.erased = False
        self.erasing = False
        self.logins_per_day = 1.0


def can_watch(user: User, t: int) -> bool:
    """Whether ``user``'s subscription grants playback at ``t`` (paid, or paid until then)."""
    sub = user.sub
    if sub is None:
        return False
    status = sub.status
    return status in (ACTIVE, PAST_DUE) or (status == CANCELING and t < sub.period_end)


class Viewing:
    __slots__ = (
        "counted", "device", "head", "item", "pos", "reason", "start_pos", "stop_pos", "tail",
        "title", "trace",
    )  # fmt: skip

    def __init__(self, device: Device, title: SimTitle, item: int, pos: int) -> None:
        self.device = device
        self.title = title
        self.item = item
        self.start_pos = pos
        self.pos = pos
        self.stop_pos = pos
        self.reason = "user"
        self.counted = True
        self.head = ""
        self.tail = ""
        self.trace = ""


class World:
    """What every actor may read: the catalogue, its relations and the population."""

    __slots__ = ("by_id", "relations", "sampler", "titles", "users")

    def __init__(self) -> None:
        self.titles: list[SimTitle] = []
        self.by_id: dict[str, SimTitle] = {}
        # (from, to, kind) -> weight; insertion order matters (removals pick by index).
        self.relations: dict[tuple[str, str, str], float] = {}
        self.sampler = TitleSampler([])
        self.users: list[User] = []

    def set_titles(self, titles: list[SimTitle]) -> None:
        self.titles = titles
        self.by_id = {title.title_id: title for title in titles}
        self.sampler = TitleSampler(titles)
