"""What a coordinator keeps in memory about its hosts (soft state, rebuilt from their next
reports after a restart): when each last reported, what was last written to Redis for it, the
targets Redis holds for it, and a version that changes with its targets (a host waiting on the
version hears of a new target at once).

Redis is written only when a report says something new (a state, a build, an error, an address),
when the host's target changed since the last write (so the record notes what the answer told
it), when it was marked lost, and about every `refresh_s` otherwise (so `updatedAt` in Redis is at
most 1.25x that old). Liveness is judged from memory.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from gantry.statuses import HostState

Targets = dict[str, tuple[str, str]]   # project -> (target to run, build to stage), "" for none


def is_moving(reported: dict[str, dict], targets: Targets) -> bool:
    """Whether the host has work under way or ahead: it downloads, or a target or a build to
    stage is neither what it runs nor what it staged or failed."""
    for project in set(reported) | set(targets):
        r = reported.get(project) or {}
        target, stage = targets.get(project, ("", ""))
        state, active, about = r.get("state"), r.get("activeBuildID"), r.get("ackedTargetBuildID")
        if state == HostState.DOWNLOADING:
            return True
        if target and target != active and not (state == HostState.FAILED and about == target):
            return True
        if stage and stage != active and not (about == stage and state in (HostState.STAGED, HostState.FAILED)):
            return True
    return False


def report_interval(moving: bool, busy_s: float, idle_s: float) -> float:
    """How long a host waits before its next report: short while it moves, long when idle."""
    return busy_s if moving else idle_s


@dataclass
class Memo:
    seen: float
    written: tuple | None = None     # the report last written to Redis
    written_at: float = 0.0
    targets: Targets = field(default_factory=dict)   # as Redis holds them
    sent: dict[str, str] = field(default_factory=dict)   # project -> the target noted as sent in Redis
    version: int = 0
    lost: bool = False
    spread: float = field(default_factory=lambda: random.uniform(0.75, 1.25))   # hosts that came together refresh apart


class HostMemory:
    def __init__(self, refresh_s: float = 30.0, busy_s: float = 0.5, idle_s: float = 10.0,
                 on_change: Callable[[str, int], None] = lambda host, version: None):
        self.refresh_s, self.busy_s, self.idle_s = refresh_s, busy_s, idle_s
        self.on_change = on_change   # (host, its new version): wakes a host waiting for news
        self.hosts: dict[str, Memo] = {}

    def is_news(self, host: str, report: tuple) -> bool:
        """Whether the report changes what the host says of its projects: a rollout may move on."""
        m = self.hosts.get(host)
        return m is None or m.lost or m.written is None or m.written[1] != report[1]

    def needs_write(self, host: str, report: tuple, now: float) -> bool:
        """Note the report; True if it must be written to Redis."""
        m = self.hosts.get(host)
        if m is None:
            self.hosts[host] = Memo(seen=now)
            return True
        m.seen = now
        return (m.lost or m.written != report or now - m.written_at >= self.refresh_s * m.spread
                or any(t != m.sent.get(p, "") for p, (t, _) in m.targets.items()))

    def wrote(self, host: str, report: tuple, targets: Targets, version: int, now: float) -> None:
        """The report was written, and Redis answered `targets` (read while the memo was at
        `version`; a newer target set since then stays)."""
        m = self.hosts.setdefault(host, Memo(seen=now))
        m.written, m.written_at, m.lost = report, now, False
        m.sent = {p: t for p, (t, _) in targets.items()}
        if m.version == version:
            m.targets = dict(targets)

    def version(self, host: str) -> int:
        m = self.hosts.get(host)
        return m.version if m else 0

    def targets(self, host: str) -> Targets:
        m = self.hosts.get(host)
        return dict(m.targets) if m else {}

    def set(self, host: str, project: str, target: str | None = None, stage: str | None = None) -> None:
        """A target or a build to stage was just written to Redis for the host."""
        m = self.hosts.get(host)
        if m is not None:
            old = m.targets.get(project, ("", ""))
            m.targets[project] = (old[0] if target is None else target, old[1] if stage is None else stage)
            m.version += 1
            self.on_change(host, m.version)

    def last_seen(self, host: str) -> float | None:
        m = self.hosts.get(host)
        return m.seen if m else None

    def mark_lost(self, host: str) -> None:
        m = self.hosts.get(host)
        if m is not None:
            m.lost = True

    def interval(self, reported: dict[str, dict], targets: Targets) -> float:
        return report_interval(is_moving(reported, targets), self.busy_s, self.idle_s)

    def lost_after(self, lost_s: float) -> float:
        """A host is lost after this long without a report: `lost_s`, but never before it
        missed three idle intervals."""
        return max(lost_s, 3 * self.idle_s)
