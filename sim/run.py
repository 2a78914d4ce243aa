"""Simulate one deployment of a build to a fleet: `simulate(Scenario) -> dict`.

At 0 the build is done and sits in the first region's store, and the deployment is created.
Other regions' stores get their replicas over the links between regions. Each datacenter's
simulated coordinator ticks as the real one does and applies the real policies: stage, then
activate (`activation`), region waves (`waves`), and the datacenter's waves, bake and health gate
(`DcRollout`). Its targets reach hosts through the long-poll (the coordinator's answer time), hosts
download (`swarm`), unpack, switch, run their health check and report back.

The control plane: each coordinator's load is what the real hosts would send (a downloading host
asks for peers every `peer_refresh_s` and reports every `busy_report_s`, an idle one every
`idle_report_s`) at `msg_cost_s` a message; its answer time grows with that load (a queue; once
it is saturated the hosts' own one-at-a-time requests hold it back, so it grows by the excess
over each refresh period).
"""
from __future__ import annotations

import random
import time
from collections import defaultdict

from gantry.actors.rollout.activation import may_activate, staging
from gantry.actors.rollout.dc_rollout import DcRollout, HostView
from gantry.actors.rollout.waves import Strategy, region_waves
from gantry.sim.events import Events
from gantry.sim.network import INF, Network, Resource
from gantry.sim.scenario import Scenario
from gantry.sim.swarm import Swarm, Transfer
from gantry.statuses import DcPhase, HostState

OLD, NEW = "b0", "b1"


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
        self.state, self.about = HostState.ACTIVE, OLD   # its own; `view` is what its coordinator last heard
        self.view = {"hostID": host_id, "state": HostState.ACTIVE, "activeBuildID": OLD, "targetBuildID": OLD,
                     "stageBuildID": "", "ackedTargetBuildID": OLD}
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
        target, stage = self.view["targetBuildID"], self.view["stageBuildID"]
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
        self.sim.count(self, "staged", +1)
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
            self.sim.count(self, "active", -1)
        self.active = build
        if build == NEW:
            self.sim.count(self, "active", +1)
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


class Dc:
    def __init__(self, sim: "Simulation", name: str, region: str):
        self.sim, self.name, self.region = sim, name, region
        self.hosts: list[Host] = []
        self.moving = 0         # hosts downloading, unpacking or switching
        self.rollout: DcRollout | None = None
        self.dirty = True
        self.wake_at = INF
        self.views: list[dict] = []
        self.hvs: dict[str, HostView] = {}
        self.load = 0.0         # control messages a second
        self.delay = sim.sc.rtt_coord_s / 2 + sim.sc.msg_cost_s

    def latency(self) -> float:
        return self.delay

    def reported(self, host: Host, state: str, about: str, active: str) -> None:
        if not host.alive and state != HostState.LOST:
            return
        v = host.view
        v["state"], v["activeBuildID"], v["ackedTargetBuildID"] = state, active, about
        host.hv.state, host.hv.active_build, host.hv.acked_target = state, active, about
        host.hv.sent_target = v["targetBuildID"]
        self.dirty = True

    def lost(self, host: Host) -> None:
        host.view["state"] = host.hv.state = HostState.LOST
        self.swarm.forget(host)
        self.dirty = True

    def set(self, host: Host, target: str | None = None, stage: str | None = None) -> None:
        if target is not None:
            host.view["targetBuildID"] = host.hv.target_build = target
        if stage is not None:
            host.view["stageBuildID"] = stage
        self.sim.events.after(self.latency(), host.news)

    def tick(self) -> None:
        sim, now = self.sim, self.sim.events.now
        self.dirty = False
        self._measure()
        if not self.views:
            self.views = [h.view for h in self.hosts]
            self.hvs = {h.id: h.hv for h in self.hosts}
        views = self.views
        if sim.status == "IN_PROGRESS" and sim.sc.stage == "all" and self.region in sim.holds:
            tell, _, done = staging(NEW, views)
            for hid in tell:
                self.set(sim.by_id[hid], stage=NEW)
            if done and self.name not in sim.staged_dcs:
                sim.staged_dcs[self.name] = now
                sim.touch_all()
        self._roll(now)

    def _roll(self, now: float) -> None:
        sim = self.sim
        if sim.status == "ROLLED_BACK":
            if sim.outcomes.get(self.name) not in (None, DcPhase.DONE):
                return
        elif sim.status != "IN_PROGRESS" or not may_activate(
                self.region, sim.region_waves, sim.dcs_by_region, lambda r: r in sim.holds,
                sim.sc.stage == "all", set(sim.staged_dcs), sim.outcomes):
            return
        if self.rollout is None and sim.status != "ROLLED_BACK" and self.region not in sim.holds:
            return
        if sim.status == "ROLLED_BACK":
            if self.rollout is None:
                sim.outcomes[self.name] = DcPhase.UNTOUCHED
                return
            self.rollout.roll_back(sim.reason)
        hosts = self.hvs
        if self.rollout is None:
            live = [h.id for h in self.hosts if h.view["state"] != HostState.LOST]
            self.rollout = DcRollout.start(NEW, OLD, live, sim.strategy)
        wave, phase = self.rollout.wave, self.rollout.phase
        for hid, build in self.rollout.step(hosts, now).items():
            self.set(sim.by_id[hid], target=build)
        if (self.rollout.wave, self.rollout.phase) != (wave, phase):
            sim.marks.append((round(now, 2), self.region, self.name, f"wave {self.rollout.wave + 1} {self.rollout.phase}"))
        if self.rollout.phase == DcPhase.BAKING:
            self.wake(self.rollout.bake_until)
        if self.rollout.phase == DcPhase.DONE and sim.outcomes.get(self.name) != DcPhase.DONE:
            sim.outcomes[self.name] = DcPhase.DONE
            sim.touch_all()
            if all(sim.outcomes.get(dc.name) == DcPhase.DONE for dc in sim.dcs):
                sim.finish("COMPLETED")
        elif self.rollout.phase == DcPhase.ROLLED_BACK and sim.outcomes.get(self.name) != DcPhase.ROLLED_BACK:
            sim.outcomes[self.name] = DcPhase.ROLLED_BACK
            if sim.status == "IN_PROGRESS":
                sim.status, sim.reason = "ROLLED_BACK", f"{self.name}: {self.rollout.reason}"
                sim.rolled_back_at = now
            sim.touch_all()

    def wake(self, at: float) -> None:
        if at < self.wake_at or self.wake_at <= self.sim.events.now:
            self.wake_at = at
            self.sim.events.at(at, self.sim.tick_dc, self, at)

    def _measure(self) -> None:
        """The messages its hosts send a second, and so its answer time."""
        sc = self.sim.sc
        busy, downloading = self.moving, self.swarm.downloading
        idle = len(self.hosts) - busy
        self.load = downloading / sc.peer_refresh_s + busy / sc.busy_report_s + idle / sc.idle_report_s
        rho = self.load * sc.msg_cost_s
        queue = sc.msg_cost_s / (1 - rho) if rho < 0.9 else sc.msg_cost_s / 0.1 + (rho - 0.9) * sc.peer_refresh_s
        self.delay = sc.rtt_coord_s / 2 + queue


class Simulation:
    def __init__(self, sc: Scenario, fleet: list[dict] | None = None, regions: list[str] | None = None,
                 holding: list[str] | None = None):
        """`fleet`: the hosts ({hostID, region, dc, rack, up, down}) instead of an even spread of
        `sc.hosts`; `holding`: the regions whose store holds the build at 0 (else the first)."""
        self.sc = sc
        self.holding = holding
        self.rng = random.Random(sc.seed)
        self.events = Events()
        self.net = Network(self.events, latency=lambda flow: sc.rtt_dc_s)   # a flow's first byte
        self.strategy = Strategy(steps=tuple(sc.steps), min_healthy=sc.min_healthy, bake_s=sc.bake_s)
        self.status, self.reason, self.ended_at, self.rolled_back_at = "IN_PROGRESS", "", None, None
        self.staged_dcs: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.marks: list = []
        self.samples: list = []
        self.counts = defaultdict(lambda: {"staged": 0, "active": 0})
        self.done_at: dict[str, float] = {}
        self.download_done = 0.0
        self.cross_region_bytes = 0.0
        self.replicated_at = 0.0
        self.peak_msgs = 0.0
        self._build(fleet, regions)

    # --- the fleet --------------------------------------------------------------------------

    def _build(self, fleet: list[dict] | None, regions: list[str] | None) -> None:
        sc = self.sc
        if fleet is None:
            regions = [f"r{i}" for i in range(sc.regions)]
            fleet = []
            dcs = [(r, f"{r}-dc{j}") for r in regions for j in range(sc.dcs_per_region)]
            per_dc = [sc.hosts // len(dcs) + (1 if i < sc.hosts % len(dcs) else 0) for i in range(len(dcs))]
            for (region, dc), n in zip(dcs, per_dc):
                for k in range(n):
                    fleet.append({"hostID": f"{dc}-h{k:06d}", "region": region, "dc": dc,
                                  "rack": f"{dc}-rack{k // sc.rack_size}"})
        self.regions = regions or sorted({f["region"] for f in fleet})
        self.region_waves = region_waves(self.regions, sc.region_waves)
        self.stores = {r: Resource(f"{r}/store", sc.origin_bps) for r in self.regions}
        self.dcs, self.by_id, self.dcs_by_region = [], {}, defaultdict(list)
        by_name: dict[str, Dc] = {}
        for f in fleet:
            if f["dc"] not in by_name:
                dc = by_name[f["dc"]] = Dc(self, f["dc"], f["region"])
                dc.swarm = Swarm(sc, self.events, self.net, self.stores[f["region"]], self.rng, dc.latency,
                                 landed=lambda h: h.downloaded(), failed=lambda h: h.download_failed())
                self.dcs.append(dc)
                self.dcs_by_region[f["region"]].append(dc.name)
        racks: dict[str, tuple] = {}
        rack_bps = sc.rack_size * sc.nic_bps / sc.rack_oversub if sc.rack_oversub > 1 else INF
        for i, f in enumerate(fleet):
            dc = by_name[f["dc"]]
            slow = sc.slow_factor if self.rng.random() < sc.slow else 1.0
            h = Host(self, f["hostID"], dc, f.get("rack") or f"{dc.name}-rack{i // sc.rack_size}",
                     (f.get("up") or sc.nic_bps) / slow, (f.get("down") or sc.nic_bps) / slow)
            h.down.ps = True                  # only the reading leg of a peer transfer crosses it
            h.up.ps = rack_bps == INF         # the sending leg crosses rack links too, if any
            if rack_bps != INF:
                h.rack_up, h.rack_down = racks.setdefault(h.rack, (
                    Resource(f"{h.rack}/up", rack_bps, shared=True), Resource(f"{h.rack}/down", rack_bps, shared=True)))
            dc.hosts.append(h)
            self.by_id[h.id] = h
        hosts = list(self.by_id.values())
        for h in self.rng.sample(hosts, round(sc.fail_health * len(hosts))):
            h.fails_health = True
        pieces = self.dcs[0].swarm.pieces
        for h in self.rng.sample(hosts, round(sc.lose * len(hosts))):
            h.lose_after = self.rng.randrange(pieces)
        self.region_links = {r: Resource(f"{r}/link", sc.region_link_bps, shared=True) for r in self.regions}

    def count(self, host: Host, what: str, delta: int) -> None:
        self.counts[host.dc.region][what] += delta

    # --- the deployment ---------------------------------------------------------------------

    def touch_all(self) -> None:
        for dc in self.dcs:
            dc.dirty = True

    def tick(self) -> None:
        """Every coordinator's loop, on the same period; one with nothing new skips its work."""
        for dc in self.dcs:
            if dc.dirty:
                dc.tick()
        msgs = sum(dc.load for dc in self.dcs)
        self.peak_msgs = max(self.peak_msgs, msgs)
        if self.status == "ROLLED_BACK" and all(dc.rollout is None or dc.rollout.phase == DcPhase.ROLLED_BACK
                                                for dc in self.dcs):
            self.ended_at = self.events.now   # every datacenter that moved hosts has taken them back
        if self.ended_at is None:
            self.events.after(self.sc.tick_s, self.tick)

    def tick_dc(self, dc: Dc, at: float) -> None:
        if dc.wake_at == at:
            dc.dirty = True   # a bake ends: its next tick looks again

    def finish(self, status: str) -> None:
        if self.ended_at is None:
            self.status, self.ended_at = status, self.events.now

    def _replicate(self) -> None:
        primary = self.regions[0]
        self.holds = set(self.holding or [primary])
        for r in self.regions:
            if r in self.holds:
                continue
            if self.sc.replicated:
                self.holds.add(r)
                continue
            flow_done = (lambda region: lambda flow: self._replicated(region, flow))(r)
            self.net.start(self.sc.size_bytes, [self.stores[primary], self.region_links[r]], flow_done)

    def _replicated(self, region: str, flow) -> None:
        self.replicated_at = self.events.now
        self.holds.add(region)
        self.cross_region_bytes += flow.size
        self.touch_all()

    def _sample(self) -> None:
        now = round(self.events.now, 2)
        for r in self.regions:
            c = self.counts[r]
            self.samples.append((now, r, c["staged"], c["active"]))
        for r in self.regions:
            if r not in self.done_at and all(self.outcomes.get(dc) == DcPhase.DONE for dc in self.dcs_by_region[r]):
                self.done_at[r] = self.events.now
        if self.ended_at is None:
            self.events.after(self.sc.sample_s, self._sample)

    def _store_outage(self) -> None:
        if not self.sc.store_down:
            return
        index, start, length = self.sc.store_down
        store = self.stores[self.regions[int(index)]]

        def flip(up: bool):
            store.up = up
            if not up:   # downloads fetching from it fail, as the daemon's do on a store error
                for f in [f for f in store.flows if isinstance(f.tag, Transfer)]:
                    f.tag.host.dc.swarm.fail(f.tag.host)
            self.net.rerate(store)
        self.events.at(start, flip, False)
        self.events.at(start + length, flip, True)

    def run(self) -> dict:
        wall = time.monotonic()
        self._replicate()
        self._store_outage()
        self.events.at(0.0, self.tick)
        self.events.at(0.0, self._sample)
        self.events.run(until=self.sc.max_s, stop=lambda: self.ended_at is not None)
        if self.ended_at is None:
            self.status, self.ended_at = "TIMED_OUT", self.events.now
        self._sample()
        return self.result(time.monotonic() - wall)

    def result(self, wall: float) -> dict:
        sc = self.sc
        origin = sum(dc.swarm.origin_bytes for dc in self.dcs)
        peer = sum(dc.swarm.peer_bytes for dc in self.dcs)
        swarm = self.dcs[0].swarm
        per_region = [{"region": r,
                       "stagedSeconds": _round(max((self.staged_dcs.get(dc) for dc in self.dcs_by_region[r]),
                                                   key=lambda t: -1 if t is None else t, default=None)
                                               if all(dc in self.staged_dcs for dc in self.dcs_by_region[r]) else None),
                       "activeSeconds": _round(self.done_at.get(r))} for r in self.regions]
        return {"hosts": len(self.by_id), "regions": len(self.regions), "sizeBytes": int(sc.size_bytes),
                "status": self.status, "totalSeconds": _round(self.ended_at),
                "stageSeconds": _round(max(self.staged_dcs.values())) if len(self.staged_dcs) == len(self.dcs) else None,
                "perRegion": per_region, "originBytes": int(origin), "peerBytes": int(peer),
                "crossRegionBytes": int(self.cross_region_bytes), "peakControlMsgsPerS": round(self.peak_msgs),
                "events": self.events.count, "wallSeconds": round(wall, 2),
                "downloadSeconds": _round(self.download_done), "replicatedSeconds": _round(self.replicated_at),
                "pieces": swarm.pieces,
                "pieceBytes": int(swarm.piece_bytes), "reason": self.reason,
                "regionWaves": self.region_waves, "marks": self.marks, "timeline": self.samples}


def _round(x):
    return None if x is None else round(x, 2)


def simulate(sc: Scenario, fleet: list[dict] | None = None, regions: list[str] | None = None,
             holding: list[str] | None = None) -> dict:
    return Simulation(sc, fleet, regions, holding).run()
