"""Backoff, written once.

Every wait between two attempts in the platform comes from here: a batch that was not durable,
a store's quick retries inside a batch, the first connections at start-up. Every wait can be
cut short by the process's stop event, so a worker asked to stop never sleeps through it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ConfigurationError(Exception):
    """Settings that no retry can fix (a wrong password, a missing secret): the process stops
    with one line saying what to change."""


class Backoff:
    """Exponential delays from ``initial_s`` up to ``max_s``; `reset` after a success."""

    def __init__(self, initial_s: float = 0.1, max_s: float = 5.0, factor: float = 2.0) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1:
            raise ValueError("backoff needs 0 < initial_s <= max_s and factor >= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._delay = initial_s

    @property
    def delay(self) -> float:
        """The next wait."""
        return self._delay

    def reset(self) -> None:
        self._delay = self.initial_s

    def wait(self, stop: threading.Event) -> bool:
        """Sleep the next delay (or until ``stop``), then grow it. True when stopped."""
        stopped = stop.wait(self._delay)
        self._delay = min(self._delay * self.factor, self.max_s)
        return stopped


def retry_until_stopped(
    attempt: Callable[[], T],
    stop: threading.Event,
    *,
    what: str,
    transient: tuple[type[BaseException], ...],
    log: logging.Logger,
    backoff: Backoff | None = None,
) -> T | None:
    """``attempt()`` until it returns; None when ``stop`` was set first.

    Errors of the ``transient`` kinds (a server still starting, a connection that timed out
    while the process was frozen) are logged in one line each and retried with backoff, for as
    long as it takes. Anything else, `ConfigurationError` included, propagates at once.
    """
    delays = backoff or Backoff(0.5, 10.0)
    while not stop.is_set():
        try:
            return attempt()
        except transient as exc:
            log.warning("%s failed, retrying in %.1fs: %s", what, delays.delay,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if delays.wait(stop):
                break
    return None
