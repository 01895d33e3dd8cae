"""The few Redis data types and commands the in-memory live store uses, over dictionaries.

Redis's own semantics where the store relies on them: an aggregate that becomes empty
disappears, a key past its expiry does not exist, ``SET`` drops an expiry, sorted sets order
by score then member. Time is :attr:`Keyspace.now` (ms), set by the store once per event, as
Redis freezes time during a script.
"""

from __future__ import annotations

from collections.abc import Iterable

_Value = str | dict[str, str] | set[str] | dict[str, float]


class Keyspace:
    """The few Redis data types and commands the live store uses, over dicts.

    Values: ``str`` (string), ``dict[str, str]`` (hash), ``set[str]`` (set) and
    ``dict[str, float]`` (sorted set; ``zsets`` tells the two dict kinds apart). As in Redis,
    an aggregate that becomes empty disappears, and a key past its expiry does not exist.
    """

    def __init__(self) -> None:
        self.data: dict[str, _Value] = {}
        self.expires: dict[str, int] = {}
        self.zsets: set[str] = set()
        #: Milliseconds; set once per event, as Redis freezes time during a script.
        self.now = 0

    # -- generic --------------------------------------------------------------------------

    def live(self, key: str) -> bool:
        if key not in self.data:
            return False
        at = self.expires.get(key)
        if at is not None and self.now > at:
            self.delete(key)
            return False
        return True

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)
            self.expires.pop(key, None)
            self.zsets.discard(key)

    def exists(self, key: str) -> bool:
        return self.live(key)

    def pexpire(self, key: str, ms: float) -> None:
        if not self.live(key):
            return
        if ms <= 0:
            self.delete(key)  # as Redis does with an expiry that has already passed
        else:
            self.expires[key] = self.now + int(ms)

    def _tidy(self, key: str) -> None:
        if key in self.data and not self.data[key]:
            self.delete(key)

    def kind(self, key: str) -> str:
        value = self.data[key]
        if isinstance(value, str):
            return "string"
        if isinstance(value, set):
            return "set"
        return "zset" if key in self.zsets else "hash"

    # -- strings --------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        if not self.live(key):
            return None
        value = self.data[key]
        assert isinstance(value, str)
        return value

    def set_str(self, key: str, value: str, ex_ms: int | None = None) -> None:
        self.delete(key)  # SET drops the previous expiry
        self.data[key] = value
        if ex_ms is not None:
            self.expires[key] = self.now + ex_ms

    def incr(self, key: str) -> int:
        value = int(self.get(key) or 0) + 1
        self.data[key] = str(value)
        return value

    # -- hashes ---------------------------------------------------------------------------

    def _hash(self, key: str, create: bool = False) -> dict[str, str] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = {}
        value = self.data[key]
        assert isinstance(value, dict) and key not in self.zsets
        return value  # type: ignore[return-value]

    def hget(self, key: str, field: str) -> str | None:
        h = self._hash(key)
        return None if h is None else h.get(field)

    def hmget(self, key: str, *fields: str) -> list[str | None]:
        h = self._hash(key) or {}
        return [h.get(field) for field in fields]

    def hgetall(self, key: str) -> dict[str, str]:
        return dict(self._hash(key) or {})

    def hset(self, key: str, **fields: str) -> None:
        h = self._hash(key, create=True)
        assert h is not None
        h.update(fields)

    def hset_field(self, key: str, field: str, value: str) -> bool:
        """True when ``field`` is new (HSET's reply of 1)."""
        h = self._hash(key, create=True)
        assert h is not None
        created = field not in h
        h[field] = value
        return created

    def hdel(self, key: str, field: str) -> None:
        h = self._hash(key)
        if h is not None:
            h.pop(field, None)
            self._tidy(key)

    def hincrby(self, key: str, field: str, by: int) -> int:
        h = self._hash(key, create=True)
        assert h is not None
        value = int(h.get(field, "0")) + by
        h[field] = str(value)
        return value

    # -- sets -----------------------------------------------------------------------------

    def _set(self, key: str, create: bool = False) -> set[str] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = set()
        value = self.data[key]
        assert isinstance(value, set)
        return value

    def smembers(self, key: str) -> set[str]:
        return set(self._set(key) or ())

    def sadd(self, key: str, *members: str) -> None:
        s = self._set(key, create=True)
        assert s is not None
        s.update(members)

    def srem(self, key: str, member: str) -> None:
        s = self._set(key)
        if s is not None:
            s.discard(member)
            self._tidy(key)

    # -- sorted sets ----------------------------------------------------------------------

    def _zset(self, key: str, create: bool = False) -> dict[str, float] | None:
        if not self.live(key):
            if not create:
                return None
            self.data[key] = {}
            self.zsets.add(key)
        value = self.data[key]
        assert isinstance(value, dict) and key in self.zsets
        return value  # type: ignore[return-value]

    def zadd(
        self, key: str, score: float, member: str, *, xx: bool = False, gt: bool = False
    ) -> bool:
        """True when ``member`` was added (ZADD's reply of 1)."""
        z = self._zset(key)
        if z is None:
            if xx:
                return False
            z = self._zset(key, create=True)
            assert z is not None
        current = z.get(member)
        if current is None:
            if xx:
                return False
            z[member] = float(score)
            return True
        if not gt or score > current:
            z[member] = float(score)
        return False

    def zincrby(self, key: str, by: float, member: str) -> None:
        z = self._zset(key, create=True)
        assert z is not None
        z[member] = z.get(member, 0.0) + by

    def zrem(self, key: str, member: str) -> None:
        z = self._zset(key)
        if z is not None:
            z.pop(member, None)
            self._tidy(key)

    def zscore(self, key: str, member: str) -> float | None:
        z = self._zset(key)
        return None if z is None else z.get(member)

    def zcard(self, key: str) -> int:
        return len(self._zset(key) or ())

    def zremrangebyscore(self, key: str, max_score: float) -> None:
        """Remove members scored at most ``max_score`` (``-inf`` to ``max_score``)."""
        z = self._zset(key)
        if z is not None:
            for member in [m for m, score in z.items() if score <= max_score]:
                del z[member]
            self._tidy(key)

    def zitems(self, key: str) -> list[tuple[str, float]]:
        """Members in Redis order: by score, then member."""
        return sorted((self._zset(key) or {}).items(), key=lambda item: (item[1], item[0]))

    def zrev(self, key: str) -> list[tuple[str, float]]:
        return zrev_order((self._zset(key) or {}).items())

    def sweep(self) -> None:
        for key, at in list(self.expires.items()):
            if self.now > at:
                self.delete(key)


def zrev_order(items: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Highest score first; ties by member, descending, as ``ZRANGE ... REV`` orders them."""
    return sorted(items, key=lambda item: (item[1], item[0]), reverse=True)


__all__ = ["Keyspace", "zrev_order"]
