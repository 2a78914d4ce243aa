"""The order in which a download takes its chunks, and when a chunk nobody holds may come from
the origin: plain logic over chunk keys (digests in the daemon, piece numbers in the simulator),
with the time passed in. `Downloader` runs it under a lock from its worker threads; the fleet
simulator (`gantry.sim`) runs the same object per simulated host.

- Each host takes its chunks in its own random order (hosts spread over the artifact).
- A chunk with no source yet is parked and looked at again later (`park`).
- A chunk no peer holds comes from the origin only if the tracker handed it to this host (such a
  chunk is taken next), or once it has waited `origin_after_s`. When the tracker said nothing about the origin (unreachable),
  the chunk is put back once, then fetched from the origin.
- Endgame: with nothing left to start, a worker re-requests the chunk in flight the longest, once
  it has been in flight more than `endgame_s`.
"""
from __future__ import annotations

import random
from typing import Hashable, Iterable


class ChunkPlan:
    def __init__(self, keys: Iterable[Hashable], rng: random.Random, endgame_s: float = 2.0,
                 origin_after_s: float = 60.0):
        self.todo = list(keys)
        rng.shuffle(self.todo)
        self.total = len(self.todo)
        self.endgame_s, self.origin_after_s = endgame_s, origin_after_s
        self.inflight: dict = {}    # key -> (started, sources tried for it)
        self.parked: dict = {}      # key -> when to look at it again
        self.waiting: dict = {}     # key -> since when it has had no source
        self.deferred: set = set()  # put back once because the tracker did not say
        self.landed = 0

    def next(self, now: float) -> tuple[Hashable | None, bool]:
        """(a chunk to fetch, whether it is an endgame copy); (None, True) if there is nothing
        to start now but the download is not over, (None, False) when it is."""
        if not self.todo:
            due = [k for k, at in self.parked.items() if at <= now]
            for k in due:
                del self.parked[k]
            self.todo.extend(due)
        if self.todo:
            key = self.todo.pop(0)
            self.inflight[key] = (now, set())
            return key, False
        slow = [(started, k) for k, (started, _) in self.inflight.items() if now - started > self.endgame_s]
        if slow:
            return min(slow, key=lambda s: s[0])[1], True
        return None, bool(self.inflight or self.parked)

    def origin_now(self, key: Hashable, now: float, handed: set | None) -> bool:
        """No peer holds `key`: may it come from the origin now? `handed` is what the tracker
        handed this host to fetch from the origin, None if it did not say."""
        since = self.waiting.setdefault(key, now)
        if handed is None:
            first = key not in self.deferred
            self.deferred.add(key)
            return not first
        return key in handed or now - since > self.origin_after_s

    def first(self, keys: Iterable[Hashable]) -> None:
        """Take these next (the chunks the tracker handed this host to fetch from the origin:
        the origin's slot is held for them, and every other host waits for them)."""
        for key in keys:
            if self.parked.pop(key, None) is None:
                if key not in self.todo:
                    continue   # in flight already
                self.todo.remove(key)
            self.todo.insert(0, key)

    def park(self, key: Hashable, at: float) -> None:
        """No source for `key` now (or all its holders are busy): look at it again at `at`."""
        if self.inflight.pop(key, None) is not None:
            self.parked[key] = at

    def tried(self, key: Hashable) -> set:
        """Sources already asked for `key` in this attempt (an endgame copy goes elsewhere)."""
        return self.inflight.get(key, (0.0, set()))[1]

    def land(self, key: Hashable) -> bool:
        """`key` is in: True the first time (a copy that lost the race counts nothing)."""
        if self.inflight.pop(key, None) is None:
            return False
        self.waiting.pop(key, None)
        self.landed += 1
        return True

    @property
    def done(self) -> bool:
        return self.landed >= self.total

    def next_due(self) -> float | None:
        """When the earliest parked chunk is due again (None if none is parked)."""
        return min(self.parked.values(), default=None)
