"""How long a deployment will take: the fleet simulator (`gantry.sim`) run over the project's
registered hosts, each at the throughput of its recent downloads, activating as long as the
project's hosts took last (the median; a guess by whether the build has deploy hooks when none
has yet), with the strategy asked for and
gantry's own settings. Every figure not measured is named in `assumptions`.

It never delays a deployment: a deployment's prediction runs after it is created, off the
request path (`Predictor`), and a rollback is never predicted. A fleet larger than
`prediction_max_hosts` is simulated as a sample of it, spread over its datacenters, with each
coordinator's load scaled to the whole fleet's; the answer says so
(`assumptions.sampled`). A simulation that runs past `prediction_wall_s` stops and says so too.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import random
import statistics
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from gantry.settings import Settings
from gantry.rollout.analysis import AnalysisIn, intervals
from gantry.sim.run import simulate
from gantry.sim.scenario import Scenario
from gantry.state import State
from gantry.statuses import TIMED_OUT, DeploymentStatus, HostState, ReplicationStatus
from gantry.topology import StackConfig

DEFAULT_NIC_BPS = 125e6        # 1 Gb/s where a host has no download on record
DEFAULT_STORE_BPS = 125e6      # a region's store egress
DEFAULT_LINK_BPS = 125e6       # between regions, for a replica still to come
log = logging.getLogger("gantry.prediction")
ACTIVATE_S = 1.0               # switch, start and health check, where no host of the project has one on record
SWITCH_S = 0.1                 # the same for a build without deploy hooks: a switch and a report
UNPACK_BPS = 200e6
MIN_MEASURED_BYTES = 64 << 20  # a smaller download measures waits (ticks, peers, the origin) more than bandwidth
MAX_POINTS = 240               # per region, in the stored timeline


def measured_bps(host: dict) -> float | None:
    """Bytes a second of the host's last download, if it moved enough to tell."""
    try:
        d = json.loads(host.get("lastDownload") or "{}")
        moved = int(d.get("bytesFromPeers", 0)) + int(d.get("bytesFromOrigin", 0))
        seconds = float(d.get("seconds") or 0)
    except (ValueError, TypeError):
        return None
    return moved / seconds if moved >= MIN_MEASURED_BYTES and seconds > 0 else None


def measured_activation(host: dict, project: str) -> float | None:
    """Seconds the host's last activation of one of the project's builds took (switch, start
    hook and health check), if it has one on record."""
    try:
        a = json.loads(host.get("lastActivation") or "{}")
        return float(a["seconds"]) if a.get("project") == project and float(a["seconds"]) >= 0 else None
    except (ValueError, TypeError, KeyError):
        return None


def predict(state: State, stack: StackConfig, project: str, build: dict, strategy: dict,
            analysis: dict | None = None) -> dict:
    settings = Settings()
    fleet, measured, activations = [], 0, []
    for region in stack.regions:
        for dc in region.datacenters:
            for h in state.hosts.for_project(dc, project):
                if h.get("state") == HostState.LOST:
                    continue
                bps, took = measured_bps(h), measured_activation(h, project)
                measured += bps is not None
                activations += [took] if took is not None else []
                fleet.append({"hostID": h["hostID"], "region": region.name, "dc": dc, "rack": h.get("rack") or "",
                              "up": bps or DEFAULT_NIC_BPS, "down": bps or DEFAULT_NIC_BPS})
    regions = [r.name for r in stack.regions]
    everyone = len(fleet)
    fleet = sample(fleet, settings.prediction_max_hosts, random.Random(0))
    share = len(fleet) / everyone if everyone else 1.0
    rec = state.builds.record(build["buildID"])
    hooks = rec is None or bool(rec.deploy_start or rec.deploy_health)
    activate_s = statistics.median(activations) if activations else ACTIVATE_S if hooks else SWITCH_S
    size = int((build.get("artifact") or {}).get("size") or build.get("artifactSize") or 0)
    replicas = {row["region"]: row.get("replicationStatus") for row in state.replication.rows(build["buildID"])}
    held = [r for r in regions if replicas.get(r, ReplicationStatus.REPLICATED) == ReplicationStatus.REPLICATED]
    assumptions = {
        "hosts": everyone, "hostsWithMeasuredThroughput": measured,
        "defaultHostBytesPerS": DEFAULT_NIC_BPS, "storeBytesPerS": DEFAULT_STORE_BPS,
        "betweenRegionsBytesPerS": DEFAULT_LINK_BPS, "regionsHoldingReplica": held,
        "sizeBytes": size, "chunkBytes": settings.chunk_avg_bytes * 1.25,
        "activateSeconds": activate_s, "hostsWithMeasuredActivation": len(activations), "unpackBytesPerS": UNPACK_BPS,
        "coordinatorTickSeconds": settings.coordinator_tick_s, "busyReportSeconds": settings.host_busy_report_s,
        "lostAfterSeconds": max(settings.host_lost_s, 3 * settings.host_idle_report_s),
        "faults": "none: every host healthy, none lost",
        "analysisSecondsPerWave": analysis_seconds(analysis, strategy["bakeS"], settings.prometheus_scrape_s),
        **({"approvalGates": f"{len(strategy['approve'])}, each approved at once (people's time is not predicted)"}
           if strategy.get("approve") else {}),
        "sampled": None if share == 1.0 else {
            "hosts": len(fleet), "of": everyone,
            "how": "hosts drawn from every datacenter in proportion; each message to a coordinator costs "
                   "1/share as much, so it is as loaded as with the whole fleet; the stores are not scaled, "
                   "so the origin's share of the traffic is optimistic"},
    }
    if not fleet:
        return {"predictedSeconds": 0.0, "perRegion": [], "assumptions": assumptions, "timeline": [], "marks": [],
                "status": DeploymentStatus.COMPLETED}
    sc = Scenario(hosts=len(fleet), size_bytes=max(size, 1), nic_bps=DEFAULT_NIC_BPS, origin_bps=DEFAULT_STORE_BPS,
                  msg_cost_s=Scenario.msg_cost_s / share,
                  region_link_bps=DEFAULT_LINK_BPS, chunk_bytes=settings.chunk_avg_bytes * 1.25,
                  steps=tuple(strategy["steps"]), min_healthy=strategy["minHealthy"], bake_s=strategy["bakeS"],
                  stage=strategy.get("stage") or "all", region_waves=strategy.get("regionWaves"),
                  busy_report_s=settings.host_busy_report_s, idle_report_s=settings.host_idle_report_s,
                  lost_s=settings.host_lost_s, unpack_bps=UNPACK_BPS, activate_s=activate_s,
                  analysis_s=assumptions["analysisSecondsPerWave"])
    r = simulate(sc, fleet, regions=regions, holding=held, wall_s=settings.prediction_wall_s)
    if r["status"] == TIMED_OUT:
        assumptions["stopped"] = (f"the simulation stopped at {r['totalSeconds']} simulated seconds: "
                                  f"it ran past {settings.prediction_wall_s} s of real time or {sc.max_s:.0f} s simulated")
    return {"predictedSeconds": r["totalSeconds"], "perRegion": r["perRegion"], "assumptions": assumptions,
            "status": r["status"], "timeline": thin(r["timeline"], len(regions)), "marks": r["marks"]}


def sample(fleet: list[dict], n: int, rng: random.Random) -> list[dict]:
    """At most about `n` hosts, from every datacenter in proportion to its size (one at least)."""
    if len(fleet) <= n:
        return fleet
    by_dc: dict[str, list[dict]] = {}
    for h in fleet:
        by_dc.setdefault(h["dc"], []).append(h)
    return [h for hosts in by_dc.values() for h in rng.sample(hosts, max(1, round(n * len(hosts) / len(fleet))))]


class Predictor:
    """Predicts deployments after they are created, one at a time, off the request path: in a
    process of its own, so a simulation never holds the API's interpreter while it answers."""

    def __init__(self, stack: StackConfig):
        self.stack = stack
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def later(self, dep_id: str, project: str, build: dict, strategy: dict, analysis: dict | None = None,
              done: Callable[[], None] = lambda: None) -> None:
        with self._lock:
            if self._pool is None:   # started on first use, again if its process died
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            pool = self._pool
        try:
            future = pool.submit(_predict_and_store, self.stack, dep_id, project, build, strategy, analysis)
        except BrokenProcessPool:
            with self._lock:
                self._pool = None
            return self.later(dep_id, project, build, strategy, analysis, done)
        future.add_done_callback(lambda f: self._finished(f, dep_id, done))

    def _finished(self, future, dep_id: str, done: Callable[[], None]) -> None:
        if future.exception() is not None:   # a prediction is a nicety: its failure is logged, never the deployment's
            log.error("predicting deployment %s failed: %r", dep_id, future.exception())
            if isinstance(future.exception(), BrokenProcessPool):
                with self._lock:
                    self._pool = None
        done()


_states: dict[str, State] = {}


def _predict_and_store(stack: StackConfig, dep_id: str, project: str, build: dict, strategy: dict,
                       analysis: dict | None) -> None:
    """In the predictor's process: predict, and keep the prediction with the deployment."""
    state = _states.get(stack.redis_url) or _states.setdefault(stack.redis_url, State(stack.redis_url))
    state.deployments.set_prediction(dep_id, predict(state, stack, project, build, strategy, analysis))


def analysis_seconds(analysis: dict | None, bake_s: float, scrape_s: float) -> float:
    """How long each wave's canary analysis keeps it baking: its intervals, and the scrapes the
    last one waits for."""
    if not analysis:
        return 0.0
    a = AnalysisIn.model_validate(analysis)
    return intervals(a, bake_s) * a.intervalS + 2 * scrape_s


def thin(timeline: list, regions: int) -> list:
    """At most MAX_POINTS samples per region (the last one kept)."""
    step = max(1, len(timeline) // max(1, regions) // MAX_POINTS)
    times = sorted({t for t, *_ in timeline})
    keep = set(times[::step]) | set(times[-1:])
    return [row for row in timeline if row[0] in keep]
