"""The simulated clock: one heap of future actions, popped earliest first.

Ties on the same millisecond are broken by scheduling order (a running counter), never by
the handler or its argument, so the order of events depends only on the order of the calls
to :meth:`Scheduler.at`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: An action: called with its simulated time (ms since the epoch) and its argument.
Handler = Callable[[int, Any], None]


class Scheduler:
    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Handler, Any]] = []
        self._seq = itertools.count()

    def at(self, t: int, handler: Handler, arg: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), handler, arg))

    def run(self, out: list[T]) -> Iterator[T]:
        """Run the actions in time order; after each, yield and clear what it put in ``out``.

        The heap may never empty (recurring actions): the consumer decides when to stop.
        """
        heap = self._heap
        pop = heapq.heappop
        while heap:
            t, _, handler, arg = pop(heap)
            handler(t, arg)
            if out:
                yield from out
                out.clear()
