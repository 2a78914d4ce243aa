"""A simulated host agent: it acts on its coordinator's answers as the node daemon's step does
(stage or activate one build at a time), downloads through its datacenter's swarm, unpacks,
switches, runs its health check and reports back after its coordinator's answer time."""
from __future__ import annotations

from typing import TYPE_CHECKING

from gantry.records import HostView
from gantry.sim.network import Resource
from gantry.statuses import HostState

if TYPE_CHECKING:
    from gantry.sim.run import Dc, Simulation

OLD, NEW = "b0", "b1"   # the build every host runs at 0, and the one deployed


class Host:
    def __init__(self, sim: "Simulation", host_id: str, dc: "Dc", rack: str, up: float, down: float):
        self.sim, self.id, self.dc, self.rack = sim, host_id, dc, rack
        self.up = Resource(f"{host_id}/up", up)
        self.down = Resource(f"{host_id}/down", down)
        self.rack_up = self.rack_down = None
        self.uploads = 0
        self.alive = True
        self.download = None
        self.lose_after: int | None = None
        self.fails_health = False
        self.installed = {OLD}
        self.active = OLD
        self._busy = False           # one move at a time, as the daemon
        self.staged = False
        self.state, self.about = HostState.ACTIVE, OLD   # its own; `hv` is what its coordinator last heard
        self.hv = HostView(host_id, OLD, HostState.ACTIVE, OLD, OLD, OLD)

    @property
    def busy(self) -> bool:
        return self._busy

    @busy.setter
    def busy(self, value: bool) -> None:
        if value != self._busy:
            self.dc.moving += 1 if value else -1
            self._busy = value

    # --- what the coordinator tells it --------------------------------------------------------

    def news(self) -> None:
        """A long-poll answer: act on the target and the build to stage, as the daemon's step."""
        if not self.alive:
            return
        if self.busy:   # its step reports first: the answer to that settles what it was told
            self.report(self.state, self.about)
            return
        target, stage = self.hv.target_build, self.hv.stage_build
        if target == self.active and self.state == HostState.ACTIVE or target == self.failed_on():
            self.report(self.state, self.about)
        if target == self.active and self.state in (HostState.STAGED, HostState.FAILED) and self.about != stage:
            self.report(HostState.ACTIVE, self.active)       # back on what it runs (the daemon's Slot.back_on)
        elif target and target != self.active and target != self.failed_on():
            self.busy = True
            if target in self.installed:
                self.sim.events.after(self.sim.sc.activate_s, self.activated, target)
            else:
                self.fetch(target, then_activate=True)
        elif stage and stage != self.active and stage not in self.installed and stage != self.failed_on():
            self.busy = True
            self.fetch(stage, then_activate=False)

    def failed_on(self) -> str | None:
        return self.about if self.state == HostState.FAILED else None

    def fetch(self, build: str, then_activate: bool) -> None:
        self.then_activate = then_activate
        self.sim.events.after(self.sim.sc.rtt_dc_s, self.dc.swarm.begin, self)   # the manifest first

    def downloaded(self) -> None:
        self.sim.download_done = max(self.sim.download_done, self.sim.events.now)
        self.sim.events.after(self.sim.sc.size_bytes / self.sim.sc.unpack_bps, self.unpacked)

    def unpacked(self) -> None:
        if not self.alive:
            return
        self.installed.add(NEW)
        self.sim.count(self, HostState.STAGED, +1)
        if self.then_activate:
            self.sim.events.after(self.sim.sc.activate_s, self.activated, NEW)
        else:
            self.busy = False
            self.report(HostState.STAGED, NEW)
            self.answered()

    def activated(self, build: str) -> None:
        if not self.alive:
            return
        self.busy = False
        if build == NEW and self.fails_health:
            self.report(HostState.FAILED, NEW)
            self.answered()
            return
        if self.active == NEW:
            self.sim.count(self, HostState.ACTIVE, -1)
        self.active = build
        if build == NEW:
            self.sim.count(self, HostState.ACTIVE, +1)
        self.report(HostState.ACTIVE, build)
        self.answered()

    def download_failed(self) -> None:
        self.busy = False
        self.report(HostState.FAILED, NEW)
        self.answered()

    def answered(self) -> None:
        """A move ended: the daemon reports at once, and acts on the answer (a target set while
        it was busy)."""
        self.sim.events.after(2 * self.dc.latency(), self.news)

    def report(self, state: str, about: str) -> None:
        """It reports at once; the coordinator sees it after its answer time."""
        self.state, self.about = state, about
        self.sim.events.after(self.dc.latency(), self.dc.reported, self, state, about, self.active)

    def die(self) -> None:
        self.alive = False
        self.busy = False
        self.dc.swarm.gone(self)
        self.sim.events.after(self.sim.sc.lost_after_s, self.dc.lost, self)   # it reported while busy
