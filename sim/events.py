"""The simulator's clock and its queue of events."""
from __future__ import annotations

import heapq
import itertools
from typing import Callable


class Events:
    def __init__(self):
        self.now = 0.0
        self.count = 0
        self._queue: list = []
        self._seq = itertools.count()

    def at(self, t: float, fn: Callable, *args) -> None:
        heapq.heappush(self._queue, (max(t, self.now), next(self._seq), fn, args))

    def after(self, dt: float, fn: Callable, *args) -> None:
        self.at(self.now + dt, fn, *args)

    def run(self, until: float = float("inf"), stop: Callable[[], bool] = lambda: False) -> None:
        queue, pop = self._queue, heapq.heappop
        count = 0
        while queue and not stop():
            t, seq, fn, args = pop(queue)
            if t > until:
                heapq.heappush(queue, (t, seq, fn, args))
                break
            self.now = t
            count += 1
            fn(*args)
        self.count += count
