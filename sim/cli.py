"""`gantry simulate`: one deployment over a simulated fleet, with gantry's own policies."""
from __future__ import annotations

import argparse
import json

from gantry.sim.scenario import GB, Scenario
from gantry.statuses import DeploymentStatus


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--regions", type=int, default=3)
    p.add_argument("--dcs-per-region", type=int, default=2)
    p.add_argument("--size-gb", type=float, default=1.0, help="the build's artifact")
    p.add_argument("--nic-gbps", type=float, default=10.0, help="each host's NIC, up and down")
    p.add_argument("--origin-gbps", type=float, default=10.0, help="each region's blob store egress")
    p.add_argument("--agent-mbps", type=float, default=Scenario.agent_bps / 1e6,
                   help="each host's download cap besides its NIC (0: none); the default is one agent on one "
                        "core (bench/agent.py)")
    p.add_argument("--region-link-gbps", type=float, default=10.0, help="between two regions (replication)")
    p.add_argument("--rtt-ms", default="0.5,80,1",
                   help="round trips: within a datacenter, between regions, to the coordinator")
    p.add_argument("--bake-s", type=float, default=30.0)
    p.add_argument("--analysis-s", type=float, default=0.0, help="each wave's canary analysis (0: none)")
    p.add_argument("--steps", default="1,0.1,0.5,1.0", help="waves: a whole number is hosts, a fraction of the datacenter")
    p.add_argument("--min-healthy", type=float, default=0.9)
    p.add_argument("--stage", choices=("all", "wave"), default="all")
    p.add_argument("--region-waves", default=None, help='e.g. "0;1,2;3" (region indexes; the rest go last)')
    p.add_argument("--fail-health", type=float, default=0.0, help="fraction of hosts whose health check fails")
    p.add_argument("--lose", type=float, default=0.0, help="fraction of hosts lost mid-download")
    p.add_argument("--slow", type=float, default=0.0, help="fraction of hosts with a NIC --slow-factor times slower")
    p.add_argument("--slow-factor", type=float, default=10.0)
    p.add_argument("--store-down", default=None, help="REGION_INDEX:FROM_S:FOR_S, a region's store down a while")
    p.add_argument("--rack-oversub", type=float, default=1.0, help="rack uplink oversubscription (1: none)")
    p.add_argument("--max-pieces", type=int, default=0, help="chunks grouped into at most this many pieces (0: by scale)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="the result as JSON on the last line")
    p.add_argument("--timeline", action="store_true", help="with --json: include the timeline and wave marks")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="draw the timeline (matplotlib)")


def parse_steps(text: str) -> tuple:
    return tuple(int(x) if x.strip().isdigit() else float(x) for x in text.split(","))


def parse_region_waves(text: str | None) -> list | None:
    if not text:
        return None
    return [[int(r) for r in wave.split(",") if r.strip()] for wave in text.split(";") if wave.strip()]


def scenario(a) -> Scenario:
    rtt = [float(x) / 1000 for x in a.rtt_ms.split(",")] + [None, None, None]
    down = None
    if a.store_down:
        r, start, length = a.store_down.split(":")
        down = (int(r), float(start), float(length))
    waves = parse_region_waves(a.region_waves)
    sc = Scenario(hosts=a.hosts, regions=a.regions, dcs_per_region=a.dcs_per_region, size_bytes=a.size_gb * GB,
                  nic_bps=a.nic_gbps * GB / 8, origin_bps=a.origin_gbps * GB / 8,
                  region_link_bps=a.region_link_gbps * GB / 8,
                  steps=parse_steps(a.steps), min_healthy=a.min_healthy, bake_s=a.bake_s, analysis_s=a.analysis_s, stage=a.stage,
                  fail_health=a.fail_health, lose=a.lose, slow=a.slow, slow_factor=a.slow_factor, store_down=down,
                  rack_oversub=a.rack_oversub, max_pieces=a.max_pieces, seed=a.seed, agent_bps=a.agent_mbps * 1e6)
    sc.rtt_dc_s, sc.rtt_region_s, sc.rtt_coord_s = (x if x is not None else d for x, d in
                                                    zip(rtt[:3], (sc.rtt_dc_s, sc.rtt_region_s, sc.rtt_coord_s)))
    if waves is not None:
        sc.region_waves = [[f"r{i}" for i in w] for w in waves]
    return sc


def run(a) -> int:
    import gc
    from gantry.sim.run import simulate
    # A run allocates millions of small objects that live long (hosts, flows, events): with the
    # default thresholds, full collections walked them all again and again (a fifth of a
    # 10,000-host run). This process only simulates.
    gc.set_threshold(100_000, 50, 100)
    sc = scenario(a)
    print(f"simulating {sc.hosts:,} hosts in {sc.regions} regions x {sc.dcs_per_region} datacenters, "
          f"{sc.size_bytes / GB:g} GB, NIC {a.nic_gbps:g} Gb/s, store egress {a.origin_gbps:g} Gb/s per region, "
          f"bake {sc.bake_s:g} s, chunks grouped into {sc.pieces()} pieces ...", flush=True)
    r = simulate(sc)
    print(f"{r['status']} in {r['totalSeconds']} s simulated (all staged at {r['stageSeconds']} s, "
          f"downloads done at {r['downloadSeconds']} s); {r['events']:,} events in {r['wallSeconds']} s")
    for pr in r["perRegion"]:
        print(f"  {pr['region']:>8}: staged at {pr['stagedSeconds']} s, active at {pr['activeSeconds']} s")
    size = r["sizeBytes"]
    print(f"origin sent {r['originBytes'] / size:.1f}x the artifact, peers {r['peerBytes'] / size:,.0f}x, "
          f"between regions {r['crossRegionBytes'] / size:.0f}x; control plane peak "
          f"{r['peakControlMsgsPerS']:,} messages/s" + (f"; {r['reason']}" if r["reason"] else ""))
    if a.plot:
        from gantry.sim.plot import plot
        plot(r, a.plot)
        print(f"timeline drawn in {a.plot}")
    if a.json:
        if not a.timeline:
            r = {k: v for k, v in r.items() if k not in ("timeline", "marks")}
        print(json.dumps(r))
    return 0 if r["status"] in (DeploymentStatus.COMPLETED, DeploymentStatus.ROLLED_BACK) else 1
