"""The build scheduler: takes queued builds, in priority then arrival order, as builder
capacity frees up, and hands each to `dispatch` (in the stack: a Ray actor on a builder node).

Each build asks for a size (cpus and memory, from its project's settings) and goes to the builder
where it fits most tightly, so large holes stay for large builds. When the build at the front of
the queue fits nowhere yet, smaller ones behind it may start in the room there is, but only for
`build_backfill_s`: after that nothing overtakes it, and it starts as soon as running builds make
room. So the queue is FIFO within a priority, and no build is overtaken forever. A build bigger
than every builder waits `build_oversize_wait_s` (its builder may be restarting), then fails
with the sizes in its error.

Plain logic over the store; `actors.BuildSchedulerActor` runs it. Nothing here is held only
in memory: queued builds are in the queue, running builds record their own results, and a lost
one is re-queued by the heartbeat monitor.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from gantry.state.builds import Builds, TransitionRefused
from gantry.statuses import BuildStatus
from gantry.settings import Settings

log = logging.getLogger("gantry.scheduler")
WINDOW = 100   # queued builds looked at per tick


@dataclass(frozen=True)
class Size:
    cpus: float
    memory_mb: int

    def within(self, room: "Size") -> bool:
        return self.cpus <= room.cpus + 1e-9 and self.memory_mb <= room.memory_mb

    def __sub__(self, other: "Size") -> "Size":
        return Size(self.cpus - other.cpus, self.memory_mb - other.memory_mb)

    @staticmethod
    def of(asked: dict, settings: Settings) -> "Size":
        """The `cpus` and `memoryMB` a build's settings ask for, or the defaults."""
        return Size(float(asked.get("cpus") or settings.build_cpus),
                    int(asked.get("memoryMB") or settings.build_memory_bytes >> 20))


def best_fit(size: Size, free: dict[str, Size]) -> str | None:
    """The node with the least room left once `size` is placed there."""
    fits = [n for n, room in free.items() if size.within(room)]
    return min(fits, key=lambda n: ((free[n] - size).cpus, (free[n] - size).memory_mb, n), default=None)


def _largest(nodes: dict[str, tuple[Size, Size]]) -> str:
    biggest = max((whole for whole, _ in nodes.values()), key=lambda s: (s.cpus, s.memory_mb))
    return f"the largest builder has {biggest.cpus:g} cpus and {biggest.memory_mb} MB"


class Scheduler:
    def __init__(self, builds: Builds, settings: Settings, nodes: Callable[[], dict[str, tuple[Size, Size]]],
                 dispatch: Callable[[str, str, str, Size], None], size_of: Callable[[dict], Size],
                 clock: Callable[[], float] = time.monotonic,
                 note: Callable[[str, str], None] = lambda build_id, line: None):
        self.builds, self.settings = builds, settings
        self.nodes = nodes              # node -> (its whole size, its room now)
        self.dispatch, self.size_of, self.clock, self.note = dispatch, size_of, clock, note
        self.blocked: dict[str, float] = {}   # the front build that fits nowhere -> since when
        self.oversize: dict[str, float] = {}  # a build bigger than every builder -> since when

    def tick(self) -> list[str]:
        """Promote retries whose backoff has passed, then start what fits."""
        self.builds.promote_due()
        nodes = self.nodes()
        if not nodes:
            return []
        free = {n: room for n, (_, room) in nodes.items()}
        started, front, oversize = [], None, set()
        for rec in self.builds.queued(WINDOW):
            build_id, size = rec["buildID"], self.size_of(rec)
            if not any(size.within(whole) for whole, _ in nodes.values()):
                # its builder may be restarting: wait a while, without holding the queue back
                if build_id not in self.oversize:
                    self.oversize[build_id] = self.clock()
                    self.note(build_id, f"waiting up to {self.settings.build_oversize_wait_s:g} s for a builder "
                                        f"with {size.cpus:g} cpus and {size.memory_mb} MB: {_largest(nodes)}")
                if self.clock() - self.oversize[build_id] >= self.settings.build_oversize_wait_s:
                    self._refuse(build_id, size, nodes)
                else:
                    oversize.add(build_id)
                continue
            node = best_fit(size, free)
            if node is None:
                if front is None:
                    front = build_id
                    if self.clock() - self.blocked.setdefault(build_id, self.clock()) >= self.settings.build_backfill_s:
                        break   # it has waited long enough: nothing overtakes it any more
                continue
            owner = uuid.uuid4().hex
            if not self.builds.claim(build_id, owner):
                continue   # cancelled meanwhile, or another scheduler took it
            self.dispatch(build_id, owner, node, size)
            free[node] = free[node] - size
            started.append(build_id)
        self.blocked = {b: t for b, t in self.blocked.items() if b == front}
        self.oversize = {b: t for b, t in self.oversize.items() if b in oversize}
        return started

    def _refuse(self, build_id: str, size: Size, nodes: dict[str, tuple[Size, Size]]) -> None:
        """No builder has been big enough for it for `build_oversize_wait_s`: fail it, with the sizes."""
        owner = uuid.uuid4().hex
        if not self.builds.claim(build_id, owner):
            return
        reason = (f"needs {size.cpus:g} cpus and {size.memory_mb} MB; {_largest(nodes)} (waited "
                  f"{self.settings.build_oversize_wait_s:g} s for a larger one)")
        try:
            self.builds.transition(build_id, BuildStatus.FAILED, lease_owner=owner, fields={"error": reason})
            log.warning("build %s refused: %s", build_id, reason)
        except TransitionRefused:
            pass

    def attempt_crashed(self, build_id: str, owner: str, reason: str) -> None:
        """The task running an attempt died (node lost, worker killed): retry or DEAD."""
        rec = self.builds.get(build_id)
        if not rec or rec.get("leaseOwner") != owner:
            return
        s = self.settings
        try:
            to = self.builds.retry_or_dead(rec, reason, s.max_retries, s.retry_backoff_s, s.retry_backoff_max_s)
            log.warning("build %s attempt %s crashed (%s): now %s", build_id, owner, reason, to.value)
        except TransitionRefused:
            pass
