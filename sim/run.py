"""Simulate one deployment of a build to a fleet: `simulate(Scenario) -> dict`.

At 0 the build is done and sits in the first region's store, and the deployment is created.
Other regions' stores get their replicas over the links between regions. Each datacenter's
simulated coordinator steps as the real one does (on news, after its rest, and every
`tick_s`) and applies the plans of the real reconcile
(`gantry.rollout.reconcile`: stage, then activate, region waves, the datacenter's waves, bake and
health gate) to the model. Its targets reach hosts through the long-poll (the coordinator's answer time), hosts
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
from collections import Counter, defaultdict

from gantry.actors.loop import MIN_REST_S
from gantry.artifacts.replica_sources import fanout_for, pick
from gantry.records import Deployment, HostView
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.reconcile import Plan, Snapshot, reconcile
from gantry.rollout.waves import region_waves
from gantry.settings import Settings
from gantry.sim.events import Events
from gantry.sim.network import INF, Network, Resource
from gantry.sim.scenario import Scenario
from gantry.sim.host import NEW, OLD, Host
from gantry.sim.swarm import Swarm, Transfer
from gantry.statuses import DEPLOYMENT_TERMINAL, TIMED_OUT, AnalysisOutcome, BuildStatus, DcPhase, DeploymentStatus, \
    HostState

D = DeploymentStatus

class Dc:
    def __init__(self, sim: "Simulation", name: str, region: str):
        self.sim, self.name, self.region = sim, name, region
        self.hosts: list[Host] = []
        self.moving = 0         # hosts downloading, unpacking or switching
        self.rollout: DcRollout | None = None
        self.current = OLD
        self.staging_began: float | None = None
        self.dirty = True
        self.step_due = False
        self.last_step = -INF
        self.wake_at = INF
        self.hvs: dict[str, HostView] = {}
        self.load = 0.0         # control messages a second
        self.delay = sim.sc.rtt_coord_s / 2 + sim.sc.msg_cost_s

    def latency(self) -> float:
        return self.delay

    def reported(self, host: Host, state: str, about: str, active: str) -> None:
        if not host.alive and state != HostState.LOST:
            return
        hv = host.hv
        hv.state, hv.active_build, hv.acked_target = state, active, about
        hv.sent_target = hv.target_build
        self.news()

    def lost(self, host: Host) -> None:
        host.hv.state = HostState.LOST
        self.swarm.forget(host)
        self.news()

    def news(self) -> None:
        """What its step reads changed (a host's report, a status, another datacenter): the
        coordinator steps again once it has rested as long as its last step took (actors/loop.py)."""
        self.dirty = True
        if not self.step_due:
            self.step_due = True
            rest = max(MIN_REST_S, len(self.hosts) * self.sim.sc.step_cost_per_host_s)
            self.sim.events.at(max(self.sim.events.now, self.last_step + rest), self._step)

    def _step(self) -> None:
        self.step_due = False
        if self.dirty:
            self.tick()

    def set(self, host: Host, target: str | None = None, stage: str | None = None) -> None:
        if target is not None:
            host.hv.target_build = target
        if stage is not None:
            host.hv.stage_build = stage or None   # as Redis gives it back
        self.sim.events.after(self.latency(), host.news)

    def tick(self) -> None:
        self.dirty, self.last_step = False, self.sim.events.now
        self._measure()
        before = (self.rollout.wave, self.rollout.phase) if self.rollout else (0, DcPhase.ROLLING)
        self.apply(reconcile(self.snapshot()), before)

    def snapshot(self) -> Snapshot:
        """What this datacenter's coordinator would read: the same snapshot, from the model."""
        sim = self.sim
        if not self.hvs:
            self.hvs = {h.id: h.hv for h in self.hosts}
        return Snapshot(dc=self.name, region=self.region, dcs_by_region=sim.dcs_by_region, deployment=sim.deployment,
                        hosts=self.hvs, holding=sim.holds, staged_dcs=sim.staged_dcs, outcomes=sim.outcomes,
                        rollout=self.rollout, current=self.current, now=sim.events.now,
                        build_status=None if self.region in sim.holds else BuildStatus.DEPLOYING, staging_began=self.staging_began,
                        stage_deadline_s=sim.stage_deadline_s, analysis=self._analysis())

    def _analysis(self) -> dict:
        """The baking wave's canary analysis: a pass, once its intervals have run."""
        r = self.rollout
        if not self.sim.analysis_s or r is None or r.phase != DcPhase.BAKING:
            return {}
        if self.sim.events.now >= r.bake_began + self.sim.analysis_s:
            return {r.wave: (AnalysisOutcome.PASS, "simulated")}
        self.wake(r.bake_began + self.sim.analysis_s)
        return {}

    def apply(self, plan: Plan, before: tuple = (0, DcPhase.ROLLING)) -> None:
        """A plan, applied to the model as the coordinator writes it to Redis."""
        sim, now, by_id = self.sim, self.sim.events.now, self.sim.by_id
        for hid, build in plan.stages.items():
            self.set(by_id[hid], stage=build)
        if plan.staging_began is not None and self.staging_began is None:
            self.staging_began = plan.staging_began
        for hid in plan.late:
            by_id[hid].hv.stage_late = sim.deployment.build_id
        if plan.staged and self.name not in sim.staged_dcs:
            sim.staged_dcs[self.name] = now
            sim.touch_all()
        for hid, build in plan.targets.items():
            self.set(by_id[hid], target=build)
        if plan.rollout is not None:
            self.rollout = plan.rollout
            if (self.rollout.wave, self.rollout.phase) != before:
                sim.marks.append((round(now, 2), self.region, self.name,
                                  f"wave {self.rollout.wave + 1} {self.rollout.phase}"))
            if self.rollout.phase == DcPhase.BAKING:
                self.wake(self.rollout.bake_until)
        if plan.current:
            self.current = plan.current
        if plan.outcome:
            sim.outcomes[self.name] = plan.outcome
            if plan.outcome in (DcPhase.DONE, DcPhase.ROLLED_BACK):
                sim.touch_all()
        if plan.status:
            sim.set_status(*plan.status)

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
        self.ended_at, self.rolled_back_at, self.timed_out = None, None, False
        self.staged_dcs: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.marks: list = []
        self.samples: list = []
        self.counts = defaultdict(lambda: {HostState.STAGED: 0, HostState.ACTIVE: 0})
        self.done_at: dict[str, float] = {}
        self.download_done = 0.0
        self.cross_region_bytes = 0.0
        self.replicated_at = 0.0
        self.sources: dict[str, str] = {}   # region -> the region its replica came from
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
        self.deployment = Deployment("sim", "sim", NEW, OLD, D.IN_PROGRESS, regions=self.regions, strategy={
            "steps": list(sc.steps), "minHealthy": sc.min_healthy, "bakeS": sc.bake_s, "stage": sc.stage,
            "regionWaves": self.region_waves}, analysis={"simulatedS": sc.analysis_s} if sc.analysis_s else None)
        self.analysis_s = sc.analysis_s
        settings = Settings()
        self.stage_deadline_s = settings.stage_timeout_s + sc.size_bytes / (settings.stage_min_mbps * 1e6)
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
        self.dcs_by_region = dict(self.dcs_by_region)
        racks: dict[str, tuple] = {}
        rack_bps = sc.rack_size * sc.nic_bps / sc.rack_oversub if sc.rack_oversub > 1 else INF
        for i, f in enumerate(fleet):
            dc = by_name[f["dc"]]
            slow = sc.slow_factor if self.rng.random() < sc.slow else 1.0
            h = Host(self, f["hostID"], dc, f.get("rack") or f"{dc.name}-rack{i // sc.rack_size}",
                     (f.get("up") or sc.nic_bps) / slow, min(f.get("down") or sc.nic_bps, sc.agent_bps or INF) / slow)
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
            dc.news()

    def tick(self) -> None:
        """Every coordinator's loop, on the same period; one with nothing new skips its work."""
        for dc in self.dcs:
            if dc.dirty:
                dc.tick()
        msgs = sum(dc.load for dc in self.dcs)
        self.peak_msgs = max(self.peak_msgs, msgs)
        if self.status == D.ROLLED_BACK and all(dc.rollout is None or dc.rollout.phase == DcPhase.ROLLED_BACK
                                                for dc in self.dcs):
            self.ended_at = self.events.now   # every datacenter that moved hosts has taken them back
        if self.ended_at is None:
            self.events.after(self.sc.tick_s, self.tick)

    def tick_dc(self, dc: Dc, at: float) -> None:
        if dc.wake_at == at:
            dc.dirty = True   # a bake ends: its next tick looks again

    @property
    def status(self) -> str:
        return self.deployment.status

    @property
    def reason(self) -> str:
        return self.deployment.reason

    def set_status(self, to: DeploymentStatus, reason: str) -> None:
        """What a plan asks of the deployment (the coordinator's set_status)."""
        if self.ended_at is not None or not self.deployment.status.active:
            return
        self.deployment.status, self.deployment.reason = to, reason
        if to == D.ROLLED_BACK:
            self.rolled_back_at = self.events.now
            self.touch_all()
        elif to in DEPLOYMENT_TERMINAL:
            self.ended_at = self.events.now

    def _replicate(self) -> None:
        """Copy the build to every region that lacks it, as a tree (`replica_sources`): each
        copy from a holder serving fewer than `fanout` copies, the rest when one lands."""
        primary = self.regions[0]
        self.holds = set(self.holding or [primary])
        if self.sc.replicated:
            self.holds |= set(self.regions)
        self.waiting = [r for r in self.regions if r not in self.holds]
        self.serving: Counter = Counter()
        self.fanout = fanout_for(self.sc.origin_bps, self.sc.region_link_bps)
        self._copy_more()

    def _copy_more(self) -> None:
        primary = self.regions[0]
        while self.waiting:
            src = pick(sorted(self.holds), self.serving, self.fanout, primary)
            if src is None:
                return
            r = self.waiting.pop(0)
            self.serving[src] += 1
            self.sources[r] = src
            flow_done = (lambda region, source: lambda flow: self._replicated(region, source, flow))(r, src)
            self.net.start(self.sc.size_bytes, [self.stores[src], self.region_links[r]], flow_done)

    def _replicated(self, region: str, source: str, flow) -> None:
        self.replicated_at = self.events.now
        self.holds.add(region)
        self.serving[source] -= 1
        self.cross_region_bytes += flow.size
        self._copy_more()
        self.touch_all()

    def _sample(self) -> None:
        now = round(self.events.now, 2)
        for r in self.regions:
            c = self.counts[r]
            self.samples.append((now, r, c[HostState.STAGED], c[HostState.ACTIVE]))
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

    def run(self, wall_s: float | None = None) -> dict:
        """Run to the deployment's end, `sc.max_s` simulated seconds, or `wall_s` real ones."""
        wall = time.monotonic()
        deadline = wall + (wall_s or float("inf"))
        self._replicate()
        self._store_outage()
        self.events.at(0.0, self.tick)
        self.events.at(0.0, self._sample)
        self.events.run(until=self.sc.max_s, stop=lambda: self.ended_at is not None or time.monotonic() > deadline)
        if self.ended_at is None:
            self.timed_out, self.ended_at = True, self.events.now
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
                "status": TIMED_OUT if self.timed_out else self.status, "totalSeconds": _round(self.ended_at),
                "stageSeconds": _round(max(self.staged_dcs.values())) if len(self.staged_dcs) == len(self.dcs) else None,
                "perRegion": per_region, "originBytes": int(origin), "peerBytes": int(peer),
                "crossRegionBytes": int(self.cross_region_bytes), "peakControlMsgsPerS": round(self.peak_msgs),
                "events": self.events.count, "wallSeconds": round(wall, 2),
                "downloadSeconds": _round(self.download_done), "replicatedSeconds": _round(self.replicated_at),
                "replicaSources": self.sources,
                "pieces": swarm.pieces,
                "pieceBytes": int(swarm.piece_bytes), "reason": self.reason,
                "regionWaves": self.region_waves, "marks": self.marks, "timeline": self.samples}


def _round(x):
    return None if x is None else round(x, 2)


def simulate(sc: Scenario, fleet: list[dict] | None = None, regions: list[str] | None = None,
             holding: list[str] | None = None, wall_s: float | None = None) -> dict:
    return Simulation(sc, fleet, regions, holding).run(wall_s)
