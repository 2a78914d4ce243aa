"""The coordinator's control plane at datacenter scale, in one process against a real redis-server.

    .venv/bin/python bench/coordinator.py --hosts 10000 --chunks 2000 --seconds 10 [--json]

It drives the real `Coordinator` (reports, tracker, soft state) with N simulated hosts that run
one project's build and hold part of a C-chunk artifact (a rollout in flight: the tracker is
full). First every host registers (its first report is written to Redis); then, for `--seconds`,
hosts report in turn, each report adding one chunk to its bitfield (a delta), with one peer
query (wanted + have bitfields, the tracker's answer and an origin assignment) for every four
reports. What is measured is the steady state: each host's last Redis write is spread over the
refresh period first, as in a datacenter that has been running for a while.

Figures beside their goals: announcesPerS (>= 5,000 on one core: 10,000 hosts at a 2 s
interval), redisWritesPerAnnounce (<= 0.1; report scripts run, as Redis counts them in INFO
commandstats; nothing else in this path writes),
peerQueriesPerS and p99AnnounceMs. The HTTP endpoint in front of it is not in this figure.
`tickMs` is one step of the coordinator's loop with a deployment in flight (its hosts read and
reconciled): the loop rests at least that long between steps, and the simulator models it so.
`coldTickMs` is the first step after a start, which reads every host. `redisCommandsPerTick`
counts what one step sends to Redis (INFO commandstats, each command of a pipeline apart) when
nothing changed between steps, `redisCommandsPerBusyTick` when 100 hosts' records were written
before each (issue 27's goal: proportional to what changed).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter

import redis

from gantry.actors.rollout.coordinator import Coordinator
from gantry.artifacts import bitfield
from gantry.cluster.services import plain_redis
from gantry.state import State, keys
from gantry.statuses import BuildStatus, HostState

TICKS = 20
CHANGED = 100   # hosts whose records are written between two steps, in the busy steps
WRITES = {"evalsha", "eval"}   # a report is written by one script (its inner HSETs are counted apart by Redis)
ARTIFACT = "blake3:" + "a" * 64


def writes(r: redis.Redis) -> int:
    return sum(v["calls"] for k, v in r.info("commandstats").items() if k.split("_", 1)[1] in WRITES)


def commands(r: redis.Redis) -> dict[str, int]:
    """Calls so far, by command (INFO commandstats; each command of a pipeline counts)."""
    return {k.split("_", 1)[1]: v["calls"] for k, v in r.info("commandstats").items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gantry-bench-coord-")
    proc, url = plain_redis(work, appendonly=True)
    try:
        r = redis.Redis.from_url(url)
        state = State(url)
        r.hset(keys.build("b1"), mapping={"buildID": "b1", "buildStatus": BuildStatus.SUCCEEDED, "artifactDigest": ARTIFACT})
        chunk_set = {f"blake3:{i:064x}" for i in range(a.chunks)}
        coord = Coordinator("bench-a", "bench", {"bench": ["bench-a"]}, state, presign=lambda key: "https://store/" + key,
                            manifest_chunks=lambda artifact: chunk_set)
        rng = random.Random(1)
        hosts = [f"h{i}" for i in range(a.hosts)]
        for h in hosts:   # each host runs b1: it may announce b1's artifact (a host announces its own targets' only)
            state.hosts.set_target("bench-a", h, "web", "b1")
        held = {h: bitfield.of(rng.sample(range(a.chunks), a.chunks // 4)) for h in hosts}
        report = {"web": {"state": HostState.ACTIVE, "activeBuildID": "b1", "error": "", "about": "b1"}}
        t0 = time.perf_counter()
        for h in hosts:   # registration: every first report is a write
            coord.heartbeat(h, f"10.0.{hash(h) % 250}.{hash(h) % 250}:7000", report, [
                {"artifact": ARTIFACT, "chunks": a.chunks, "bits": bitfield.encode(held[h]), "complete": False}])
        register_s = time.perf_counter() - t0
        now = coord.clock()
        for h in hosts:   # a datacenter running for a while: last writes spread over the refresh period
            coord.memory.hosts[h].written_at = now - rng.uniform(0, coord.memory.refresh_s)

        before, announces, queries, lat = writes(r), 0, 0, []
        deadline = time.perf_counter() + a.seconds
        i = 0
        while time.perf_counter() < deadline:
            h = hosts[i % len(hosts)]
            i += 1
            add = 1 << rng.randrange(a.chunks)
            held[h] |= add
            t = time.perf_counter()
            coord.heartbeat(h, f"10.0.{hash(h) % 250}.{hash(h) % 250}:7000", report, [
                {"artifact": ARTIFACT, "chunks": a.chunks, "add": bitfield.encode(add), "complete": False}])
            lat.append(time.perf_counter() - t)
            announces += 1
            if announces % 4 == 0:
                want = bitfield.full(a.chunks) & ~held[h]
                coord.peers(h, "10.0.0.1:7000", ARTIFACT, a.chunks, bitfield.encode(want), bitfield.encode(held[h]))
                queries += 1
        elapsed = a.seconds
        written = writes(r) - before
        # one step of the loop with a deployment in flight (the hosts are read and reconciled):
        # the loop rests at least this long after a step (actors/loop.py), the simulator too
        state.deployments.create("web", "b1", None, {"steps": [0.1, 1.0], "minHealthy": 0.9, "bakeS": 60},
                                 ["bench"], "bench")
        t = time.perf_counter()
        coord.tick()   # the first step after a start reads every host
        cold_ms = (time.perf_counter() - t) * 1000

        def steps(changes: int) -> tuple[list[float], dict[str, float]]:
            """TICKS steps, `changes` hosts' reports written to Redis before each (a refresh each)."""
            ticks, calls = [], Counter()
            for k in range(TICKS):
                for h in rng.sample(hosts, changes):
                    coord.memory.hosts[h].written_at = 0   # its next report refreshes its record
                    coord.heartbeat(h, f"10.0.{hash(h) % 250}.{hash(h) % 250}:7000", report)
                before = commands(r)
                t = time.perf_counter()
                coord.tick()
                ticks.append(time.perf_counter() - t)
                calls.update({k: v - before.get(k, 0) for k, v in commands(r).items() if k != "info"})
            return ticks, {k: v / TICKS for k, v in calls.items() if v > 0}

        ticks, calls = steps(0)
        busy_ticks, busy_calls = steps(CHANGED)
        assert len(coord.tracker.swarms[ARTIFACT].peers) == a.hosts, "the announces did not reach the tracker"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lat.sort()
    out = {"hosts": a.hosts, "chunks": a.chunks, "announcesPerS": round(announces / elapsed),
           "peerQueriesPerS": round(queries / elapsed), "redisWritesPerAnnounce": round(written / announces, 4),
           "p99AnnounceMs": round(lat[int(len(lat) * 0.99)] * 1000, 3),
           "coldTickMs": round(cold_ms, 1), "tickMs": round(sorted(ticks)[TICKS // 2] * 1000, 1),
           "tickP99Ms": round(max(ticks) * 1000, 1), "redisCommandsPerTick": round(sum(calls.values())),
           "redisCommandsPerTickByName": {k: round(v) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6]},
           "busyTickMs": round(sorted(busy_ticks)[TICKS // 2] * 1000, 1),
           "busyTickP99Ms": round(max(busy_ticks) * 1000, 1),
           "redisCommandsPerBusyTick": round(sum(busy_calls.values()))}
    print(f"registration of {a.hosts} hosts: {register_s:.1f} s ({a.hosts / register_s:.0f} first reports/s, each written)")
    print(f"announces/s {out['announcesPerS']:>8}   goal >= 5000 (10,000 hosts at a 2 s interval, one core)")
    print(f"Redis writes per announce {out['redisWritesPerAnnounce']:>6}   goal <= 0.1 ({written} writes)")
    print(f"peer queries/s {out['peerQueriesPerS']:>8}   p99 announce {out['p99AnnounceMs']} ms")
    print(f"the first loop step after a start (reads every host) {out['coldTickMs']} ms")
    print(f"a loop step, a deployment in flight, nothing changed (median of {TICKS}) {out['tickMs']} ms, "
          f"the slowest {out['tickP99Ms']} ms; Redis commands a step {out['redisCommandsPerTick']} "
          f"{out['redisCommandsPerTickByName']}")
    print(f"the same with {CHANGED} hosts' records written before each step: {out['busyTickMs']} ms, the slowest "
          f"{out['busyTickP99Ms']} ms; Redis commands a step {out['redisCommandsPerBusyTick']} "
          f"(goal: proportional to what changed, not to the {a.hosts} hosts)")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
