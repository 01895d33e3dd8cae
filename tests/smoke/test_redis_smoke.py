from __future__ import annotations

import time

import pytest
import redis

from polystream.settings import Settings

pytestmark = pytest.mark.stack


def test_strings_hashes_sorted_sets_and_ttl(settings: Settings, unique: str) -> None:
    r = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    keys = [f"smoke:{unique}:{k}" for k in ("s", "h", "z", "t")]
    s, h, z, t = keys
    try:
        assert r.set(s, "hello") is True
        assert r.get(s) == "hello"
        assert r.incrby(f"{s}:n", 5) == 5
        keys.append(f"{s}:n")

        r.hset(h, mapping={"title": "Heat", "year": "1995"})
        assert r.hgetall(h) == {"title": "Heat", "year": "1995"}

        r.zadd(z, {"a": 3.5, "b": 1.0, "c": 2.25})
        assert r.zrevrange(z, 0, -1, withscores=True) == [("a", 3.5), ("c", 2.25), ("b", 1.0)]
        assert r.zincrby(z, 2.0, "b") == 3.0
        assert r.zrank(z, "b") == 1

        r.set(t, "soon gone", px=300)
        assert 0 < r.pttl(t) <= 300
        time.sleep(0.45)
        assert r.get(t) is None
    finally:
        r.delete(*keys)
        r.close()
