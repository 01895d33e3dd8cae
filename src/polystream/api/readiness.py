"""`/readyz`'s store checks: each store the API reads asked with a cheap real query, all at
once, each bounded by the same timeout.

A blocking driver call cannot be cancelled: one that never returns (a frozen server) keeps its
thread until the driver's own timeout. So a store is asked at most once at a time; a probe
still running from an earlier `/readyz` is awaited again rather than joined by another thread,
and a poller hitting `/readyz` every half second during an outage cannot fill the default
executor that the receipt lookups share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def _retrieve(fut: asyncio.Future[object]) -> None:
    # A probe that failed after its caller stopped waiting: its error is in a later answer.
    if not fut.cancelled():
        fut.exception()


class StoreProbes:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._running: dict[str, asyncio.Future[object]] = {}

    async def check(self, name: str, probe: Callable[[], object]) -> str:
        """"ok", or "unavailable (why)" when ``probe`` raised or did not return in time."""
        loop = asyncio.get_running_loop()
        fut = self._running.get(name)
        if fut is None or fut.done() or fut.get_loop() is not loop:
            fut = asyncio.ensure_future(asyncio.to_thread(probe))
            fut.add_done_callback(_retrieve)
            self._running[name] = fut
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
        except TimeoutError:
            return f"unavailable (no answer within {self.timeout_s:g}s)"
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ok"
