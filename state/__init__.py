"""All of gantry's state in Redis, one module per entity. `State` opens one connection and
hands it to each; the schema is in `keys`, the scripts in `scripts/`."""
from __future__ import annotations

from typing import Callable

from gantry.clock import now_ms
from gantry.state.analysis import Analyses
from gantry.state.approvals import Approvals
from gantry.state.audit import AuditLog
from gantry.state.builds import Builds, DuplicateBuild, TransitionRefused
from gantry.state.caches import Caches
from gantry.state.connection import connect
from gantry.state.deployments import Deployments
from gantry.state.events import Events
from gantry.state.gc import Retention
from gantry.state.hosts import Hosts
from gantry.state.logs import Logs
from gantry.state.notices import Notices
from gantry.state.projects import Projects
from gantry.state.ratelimit import RateLimited, RateLimiter
from gantry.state.replication import Replication

__all__ = ["State", "TransitionRefused", "DuplicateBuild", "RateLimited"]


class State:
    def __init__(self, url: str, clock: Callable[[], int] = now_ms, ride_out_s: float = 3.0):
        self.r = connect(url, ride_out_s=ride_out_s)
        self.clock = clock
        self.audit = AuditLog(self.r)
        self.projects = Projects(self.r, clock, self.audit)
        self.builds = Builds(self.r, clock)
        self.caches = Caches(self.r, clock)
        self.replication = Replication(self.r, clock)
        self.logs = Logs(self.r, connect(url, decode=False, ride_out_s=ride_out_s))
        from gantry.archive.pointers import ArchivePointers   # here: gantry.archive imports gantry.state
        self.archive = ArchivePointers(self.r)
        self.deployments = Deployments(self.r, clock, frozen=self.projects.freeze_reason)
        self.analyses = Analyses(self.r)
        self.approvals = Approvals(self.r, self.audit)
        self.events = Events(self.r)
        self.notices = Notices(self.r)
        self.hosts = Hosts(self.r, clock)
        self.rates = RateLimiter(self.r)
        self.retention = Retention(self.r, clock)

    def ping(self) -> bool:
        return bool(self.r.ping())
