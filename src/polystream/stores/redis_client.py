"""The Redis driver at the live store's edge: its client, and its errors turned into the
project's own (:mod:`~polystream.store_errors`), here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError
from redis.retry import Retry

from polystream.store_errors import StoreError, TransientStoreError

TRANSIENT_REPLIES: Final = (
    "BUSY",
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "OOM",
    "READONLY",
)


def is_transient_reply(error: ResponseError) -> bool:
    if isinstance(error, (ReadOnlyError, OutOfMemoryError)):
        return True  # a failover in progress, or memory that eviction or a resize will free
    return str(error).startswith(TRANSIENT_REPLIES)


@contextmanager
def edge() -> Iterator[None]:
    """Driver errors become the project's own errors here and nowhere else."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # BusyLoadingError (a restarting server loading its dataset) is a ConnectionError.
        raise TransientStoreError(f"redis unavailable: {exc}") from exc
    except ResponseError as exc:
        if is_transient_reply(exc):
            raise TransientStoreError(f"redis refused for now: {exc}") from exc
        raise StoreError(f"redis error: {exc}") from exc
    except RedisError as exc:
        raise StoreError(f"redis error: {exc}") from exc


def connect(url: str, *, socket_timeout_s: float = 5.0) -> redis.Redis:
    """A client for the live store (lazy: nothing connects until the first command)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        # One quick retry absorbs a dropped idle connection; anything longer is the worker's
        # business (bounded retries with backoff, then the sink pauses).
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        health_check_interval=30,
    )


def ranked(rows: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Sorted-set rows with float scores."""
    return [(member, float(score)) for member, score in rows]


__all__ = ["TRANSIENT_REPLIES", "connect", "edge", "is_transient_reply", "ranked"]
