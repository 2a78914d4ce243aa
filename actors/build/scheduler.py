"""The build scheduler: takes queued builds, in priority then arrival order, as builder
capacity frees up, and hands each to `dispatch` (in the stack: a Ray task on a `builder` node).

Plain logic over the store; `actors.BuildSchedulerActor` runs it. Nothing here is held only
in memory: queued builds are in the queue, running builds record their own results, and a lost
one is re-queued by the heartbeat monitor.
"""
from __future__ import annotations

import logging
import uuid
from typing import Callable

from gantry.state.builds import Builds, TransitionRefused
from gantry.settings import Settings

log = logging.getLogger("gantry.scheduler")


class Scheduler:
    def __init__(self, builds: Builds, settings: Settings, capacity: Callable[[], int],
                 dispatch: Callable[[str, str], None]):
        self.builds, self.settings = builds, settings
        self.capacity, self.dispatch = capacity, dispatch

    def tick(self) -> list[str]:
        """Promote retries whose backoff has passed, then fill free builder slots."""
        self.builds.promote_due()
        free = self.capacity() - len(self.builds.building())
        started = []
        while free > 0:
            owner = uuid.uuid4().hex
            build_id = self.builds.claim_next(owner)
            if build_id is None:
                break
            self.dispatch(build_id, owner)
            started.append(build_id)
            free -= 1
        return started

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
