"""The heartbeat monitor: finds BUILDING builds whose worker stopped checking in (or never began
the attempt it leased) and re-queues them with retries + 1 and backoff, or marks them DEAD past
the retry limit."""
from __future__ import annotations

import logging

from gantry.state.builds import Builds, TransitionRefused
from gantry.builds import heartbeat_expired
from gantry.settings import Settings

log = logging.getLogger("gantry.monitor")


class HeartbeatMonitor:
    def __init__(self, builds: Builds, settings: Settings):
        self.builds, self.settings = builds, settings

    def sweep(self) -> list[tuple[str, str]]:
        """One pass; returns (buildID, new status) for each build it acted on."""
        s, now, acted = self.settings, self.builds.clock(), []
        for rec in self.builds.building():
            last = int(rec.get("lastHeartbeat") or rec.get("startedAt") or 0)
            silent = (now - last) / 1000
            if rec.get("attempt") != rec.get("leaseOwner"):
                # leased, but its worker has not begun: a Ray worker process may take seconds to start
                if silent <= s.worker_start_s:
                    continue
                why = f"lost worker: the attempt did not begin within {s.worker_start_s:g}s"
            elif heartbeat_expired(last, now, s.heartbeat_s, s.heartbeat_misses):
                why = f"lost worker: no heartbeat for {silent:.0f}s"
            else:
                continue
            try:
                to = self.builds.retry_or_dead(rec, why,
                                              s.max_retries, s.retry_backoff_s, s.retry_backoff_max_s)
            except TransitionRefused:
                continue  # finished or re-leased meanwhile
            log.warning("build %s lost its worker; now %s", rec["buildID"], to.value)
            acted.append((rec["buildID"], to.value))
        return acted
