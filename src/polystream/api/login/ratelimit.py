"""Fixed-window counters for login attempts, in Redis (or a dict).

A window starts at the first attempt and lasts ``window_s``; every attempt counts, before the
password is checked, so a client over its limit costs the server no argon2 work at all.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis


class AttemptCounter(Protocol):
    def hit(self, bucket: str, window_s: int) -> tuple[int, int]:
        """Count one attempt; (attempts in the window so far, seconds until it ends)."""
        ...

    def clear(self, bucket: str) -> None: ...


class InMemoryAttemptCounter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str, window_s: int) -> tuple[int, int]:
        now = time.monotonic()
        with self._lock:
            count, ends = self._windows.get(bucket, (0, now + window_s))
            if ends <= now:
                count, ends = 0, now + window_s
            self._windows[bucket] = (count + 1, ends)
        return count + 1, max(1, int(ends - now + 0.999))

    def clear(self, bucket: str) -> None:
        with self._lock:
            self._windows.pop(bucket, None)


class RedisAttemptCounter:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, bucket: str) -> str:
        return f"{self._prefix}:login:{bucket}"

    def hit(self, bucket: str, window_s: int) -> tuple[int, int]:
        key = self._key(bucket)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window_s, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
        return int(count), max(1, int(ttl))

    def clear(self, bucket: str) -> None:
        self._redis.delete(self._key(bucket))
