"""The fleet simulator against the real thing: the `bench/p2p.py` case on real node daemons, then
the simulator with the same parameters.

    .venv/bin/python bench/sim_vs_real.py --hosts 8,16 [--size-mb 32 --cap-mbps 2 --chunk-kb 512] [--json]

Same hosts, artifact size, per-host and origin caps, chunk size (the real manifest's average),
strategy (one wave, no bake, stage all) and this machine's measured control-plane round trip
(the median of refused requests to the datacenter's coordinator endpoint: HTTP and the
endpoint's loop) plus the coordinator's per-message cost from bench/coordinator.py. Goal: the
simulated time within 25% of the real one in every case. The last line with --json is
{"cases": [{"hosts", "realSeconds", "simSeconds"}]}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import httpx

import p2p
from gantry.auth import issue_host
from gantry.node_daemon.daemon import download_workers
from gantry.sim.run import simulate
from gantry.sim.scenario import Scenario


def coordinator_rtt(stack, cfg) -> float:
    token = issue_host(cfg.jwt_secret(), "probe", p2p.DC)
    with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), timeout=30) as api:
        for _ in range(60):
            r = api.get(f"/dc/{p2p.DC}/endpoint", headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 200:
                break
            time.sleep(1)
        url = r.json()["url"]
    times = []
    with httpx.Client(timeout=10, verify=cfg.http_verify()) as c:
        for _ in range(40):
            t0 = time.perf_counter()
            c.post(f"{url}/peers", headers={"Authorization": "Bearer nope"}, content=b"{}")
            times.append(time.perf_counter() - t0)
    return statistics.median(times[5:])


def main() -> int:
    ap = argparse.ArgumentParser()
    p2p.arguments(ap)
    ap.set_defaults(hosts="8,16", cap_mbps=2.0, skip_origin_only=True)
    a = ap.parse_args()
    a.skip_origin_only = True
    measured = {}
    real = p2p.measure(a, probe=lambda stack, cfg: measured.update(rtt=coordinator_rtt(stack, cfg)))
    rtt = measured["rtt"]
    print(f"coordinator round trip on this machine: {rtt * 1000:.2f} ms", flush=True)
    cases = []
    for r in real:
        sc = Scenario(hosts=r["hosts"], regions=1, dcs_per_region=1, size_bytes=r["sizeBytes"],
                      nic_bps=r["capBytesPerS"], origin_bps=r["capBytesPerS"], chunk_bytes=r["chunkBytes"],
                      steps=(1.0,), min_healthy=1.0, bake_s=0, rtt_coord_s=rtt, rtt_dc_s=rtt / 2,
                      activate_s=0.1, unpack_bps=200e6, replicated=True, seed=r["hosts"],
                      workers=download_workers(r["capBytesPerS"]))   # the capped daemons' own
        sim = simulate(sc)
        cases.append({"hosts": r["hosts"], "realSeconds": r["p2pSeconds"], "simSeconds": sim["totalSeconds"],
                      "realDownloadedSeconds": r["downloadedSeconds"], "simDownloadSeconds": sim["downloadSeconds"],
                      "realOriginBytes": r["originBytes"], "simOriginBytes": sim["originBytes"]})
        off = sim["totalSeconds"] / r["p2pSeconds"] - 1
        print(f"N={r['hosts']:3d}  real {r['p2pSeconds']:6.1f} s   simulated {sim['totalSeconds']:6.1f} s   "
              f"{off:+.0%} (goal within 25%)   downloads done: real {r['downloadedSeconds']:.1f} s, "
              f"simulated {sim['downloadSeconds']:.1f} s   origin sent: real {r['originBytes'] / r['sizeBytes']:.2f}x, "
              f"simulated {sim['originBytes'] / r['sizeBytes']:.2f}x", flush=True)
    if a.json:
        print(json.dumps({"cases": cases, "coordinatorRttSeconds": round(rtt, 5)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
