"""How long a deployment will take, before it starts: the fleet simulator (`gantry.sim`) run over
the project's registered hosts, each at the throughput of its recent downloads, with the
strategy asked for and gantry's own settings. Every figure not measured is named in
`assumptions`."""
from __future__ import annotations

import json

from gantry.settings import Settings
from gantry.sim.run import simulate
from gantry.sim.scenario import Scenario
from gantry.state import State
from gantry.statuses import DeploymentStatus, HostState, ReplicationStatus
from gantry.topology import StackConfig

DEFAULT_NIC_BPS = 125e6        # 1 Gb/s where a host has no download on record
DEFAULT_STORE_BPS = 125e6      # a region's store egress
DEFAULT_LINK_BPS = 125e6       # between regions, for a replica still to come
ACTIVATE_S = 1.0               # switch, start and health check
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


def predict(state: State, stack: StackConfig, project: str, build: dict, strategy: dict) -> dict:
    settings = Settings()
    fleet, measured = [], 0
    for region in stack.regions:
        for dc in region.datacenters:
            for h in state.hosts.for_project(dc, project):
                if h.get("state") == HostState.LOST:
                    continue
                bps = measured_bps(h)
                measured += bps is not None
                fleet.append({"hostID": h["hostID"], "region": region.name, "dc": dc, "rack": h.get("rack") or "",
                              "up": bps or DEFAULT_NIC_BPS, "down": bps or DEFAULT_NIC_BPS})
    regions = [r.name for r in stack.regions]
    size = int((build.get("artifact") or {}).get("size") or build.get("artifactSize") or 0)
    replicas = {row["region"]: row.get("replicationStatus") for row in state.replication.rows(build["buildID"])}
    held = [r for r in regions if replicas.get(r, ReplicationStatus.REPLICATED) == ReplicationStatus.REPLICATED]
    assumptions = {
        "hosts": len(fleet), "hostsWithMeasuredThroughput": measured,
        "defaultHostBytesPerS": DEFAULT_NIC_BPS, "storeBytesPerS": DEFAULT_STORE_BPS,
        "betweenRegionsBytesPerS": DEFAULT_LINK_BPS, "regionsHoldingReplica": held,
        "sizeBytes": size, "chunkBytes": settings.chunk_avg_bytes * 1.25,
        "activateSeconds": ACTIVATE_S, "unpackBytesPerS": UNPACK_BPS,
        "coordinatorTickSeconds": 0.5, "busyReportSeconds": settings.host_busy_report_s,
        "lostAfterSeconds": max(settings.host_lost_s, 3 * settings.host_idle_report_s),
        "faults": "none: every host healthy, none lost",
    }
    if not fleet:
        return {"predictedSeconds": 0.0, "perRegion": [], "assumptions": assumptions, "timeline": [], "marks": [],
                "status": DeploymentStatus.COMPLETED}
    sc = Scenario(hosts=len(fleet), size_bytes=max(size, 1), nic_bps=DEFAULT_NIC_BPS, origin_bps=DEFAULT_STORE_BPS,
                  region_link_bps=DEFAULT_LINK_BPS, chunk_bytes=settings.chunk_avg_bytes * 1.25,
                  steps=tuple(strategy["steps"]), min_healthy=strategy["minHealthy"], bake_s=strategy["bakeS"],
                  stage=strategy.get("stage") or "all", region_waves=strategy.get("regionWaves"),
                  busy_report_s=settings.host_busy_report_s, idle_report_s=settings.host_idle_report_s,
                  lost_s=settings.host_lost_s, unpack_bps=UNPACK_BPS, activate_s=ACTIVATE_S)
    r = simulate(sc, fleet, regions=regions, holding=held)
    return {"predictedSeconds": r["totalSeconds"], "perRegion": r["perRegion"], "assumptions": assumptions,
            "status": r["status"], "timeline": thin(r["timeline"], len(regions)), "marks": r["marks"]}


def thin(timeline: list, regions: int) -> list:
    """At most MAX_POINTS samples per region (the last one kept)."""
    step = max(1, len(timeline) // max(1, regions) // MAX_POINTS)
    times = sorted({t for t, *_ in timeline})
    keep = set(times[::step]) | set(times[-1:])
    return [row for row in timeline if row[0] in keep]
