"""N hosts long-polling one coordinator's real endpoint (`/watch`, HTTPS) on loopback.

    .venv/bin/python bench/longpoll.py --hosts 10000 [--json]

This process runs the real `Coordinator` and `HostGateway` (TLS from a stack CA, a real
redis-server), as the coordinator's actor does. A client process opens one connection per host
and parks a `/watch` on each (waitS 60: the bench is bounded by it). With every poll parked, it
measures the endpoint's RSS and CPU while they wait, then tells 10% of the hosts of a new target
the way a wave does (the coordinator writes each one's target), then the other 90% at once.
Wake-up latency is from a host's target being set to its client reading the answer (one clock:
both processes are on this machine). Goals: wake-up p99 <= 0.5 s; memory and CPU reported.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time


from gantry import auth
from gantry.actors.rollout.coordinator import Coordinator
from gantry.actors.rollout.host_gateway import HostGateway
from gantry.cluster.certs import StackCA
from gantry.cluster.services import plain_redis
from gantry.state import State
from gantry.statuses import HostState
from gantry.tls import client_context, server_context

DC, SECRET, WAIT_S = "lp-a", "bench-secret-" + "x" * 32, 60


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def clients(url: str, ca: str, polls: list[dict]) -> dict[str, float]:
    """Park one /watch per host, each on its own connection; host -> when its answer was read."""
    import aiohttp
    got: dict[str, float] = {}
    conn = aiohttp.TCPConnector(limit=0, ssl=client_context(ca) if url.startswith("https") else False)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=WAIT_S + 60)) as s:
        async def poll(p: dict) -> None:
            async with s.post(url + "/watch", json=p["body"], headers={"Authorization": "Bearer " + p["token"]}) as r:
                await r.read()
                if r.status == 200:
                    got[p["body"]["hostID"]] = time.time()
        tasks = []
        for i in range(0, len(polls), 250):   # within the listen backlog
            tasks += [asyncio.create_task(poll(p)) for p in polls[i:i + 250]]
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks, return_exceptions=True)
    return got


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plain", action="store_true", help="plain HTTP (to see what TLS costs)")
    ap.add_argument("--client", help=argparse.SUPPRESS)   # the client process: a file of polls
    a = ap.parse_args()
    if a.client:
        spec = json.load(open(a.client))
        print(json.dumps(asyncio.run(clients(spec["url"], spec["ca"], spec["polls"]))))
        return 0

    work = tempfile.mkdtemp(prefix="gantry-bench-lp-")
    proc, url = plain_redis(work)
    client = None
    try:
        ca = StackCA(work + "/ca").ensure()
        cert, key = ca.issue("endpoint", ["127.0.0.1"])
        coord = Coordinator(DC, "lp", {"lp": [DC]}, State(url))
        hosts = [f"h{i}" for i in range(a.hosts)]
        for h in hosts:
            coord.heartbeat(h, "127.0.0.1:7000", {"web": {"state": HostState.ACTIVE, "activeBuildID": "b1", "about": ""}})
        set_at: dict[str, float] = {}
        ep = HostGateway(coord, SECRET, DC, rate=(50, 200), tls=None if a.plain else server_context(str(cert), str(key)))
        woken = coord.memory.on_change
        coord.memory.on_change = lambda h, v: (set_at.setdefault(h, time.time()), woken(h, v))
        polls = [{"token": auth.issue_host(SECRET, h, DC), "body": {"hostID": h, "version": coord.watch_version(h),
                                                                      "waitS": WAIT_S}} for h in hosts]
        with open(work + "/polls.json", "w") as f:
            json.dump({"url": ep.url, "ca": str(ca.ca_file), "polls": polls}, f)
        del polls
        rss0, t0 = rss_mb(), time.time()
        client = subprocess.Popen([sys.executable, __file__, "--client", work + "/polls.json"], stdout=subprocess.PIPE)
        while sum(len(w) for w in list(ep.waiters.values())) < a.hosts and time.time() - t0 < WAIT_S / 2:
            time.sleep(0.2)
        parked = sum(len(w) for w in list(ep.waiters.values()))
        park_s = time.time() - t0
        c0 = cpu_s()
        time.sleep(5)
        idle_cpu = (cpu_s() - c0) / 5
        rss_parked = rss_mb()
        wave = hosts[: a.hosts // 10]
        for group in (wave, hosts[a.hosts // 10:]):
            c0, t1 = cpu_s(), time.time()
            for h in group:
                coord._set(h, "web", target="b2")
            set_s, wake_cpu = time.time() - t1, cpu_s() - c0
            time.sleep(2)
        got = json.loads(client.communicate(timeout=WAIT_S + 90)[0])
    finally:
        if client and client.poll() is None:
            client.kill()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lat = {h: got[h] - set_at[h] for h in hosts if h in got and h in set_at}
    wave_lat = [lat[h] for h in wave if h in lat]
    rest_lat = [lat[h] for h in hosts[a.hosts // 10:] if h in lat]
    out = {"hosts": a.hosts, "parked": parked, "parkSeconds": round(park_s, 1), "answered": len(got),
           "endpointRssMbBefore": round(rss0), "endpointRssMbParked": round(rss_parked),
           "rssKbPerPoll": round((rss_parked - rss0) * 1024 / max(1, parked), 1),
           "idleCpuCoresParked": round(idle_cpu, 3),
           "waveWakeP50S": round(percentile(wave_lat, 0.5), 3), "waveWakeP99S": round(percentile(wave_lat, 0.99), 3),
           "restWakeP50S": round(percentile(rest_lat, 0.5), 3), "restWakeP99S": round(percentile(rest_lat, 0.99), 3),
           "restSetSeconds": round(set_s, 2), "restCpuSeconds": round(wake_cpu, 2)}
    print(f"{parked} of {a.hosts} long-polls parked in {park_s:.1f} s over TLS; {len(got)} answered")
    print(f"endpoint RSS {out['endpointRssMbBefore']} MB before, {out['endpointRssMbParked']} MB with them parked "
          f"({out['rssKbPerPoll']} KB a poll); CPU while parked {out['idleCpuCoresParked']} cores")
    print(f"wake-up, a wave of {len(wave)}: p50 {out['waveWakeP50S']} s, p99 {out['waveWakeP99S']} s   goal p99 <= 0.5 s")
    print(f"wake-up, the other {a.hosts - len(wave)} at once: p50 {out['restWakeP50S']} s, "
          f"p99 {out['restWakeP99S']} s (their targets written in {set_s:.2f} s)   goal p99 <= 0.5 s")
    if a.json:
        print(json.dumps(out))
    return 0 if len(got) == a.hosts else 1


if __name__ == "__main__":
    sys.exit(main())
