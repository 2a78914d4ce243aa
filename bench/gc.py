"""Garbage collection's cost, on a real redis-server and two real S3 servers (rclone) this script
starts and stops (no Ray: the collector is a plain class).

    .venv/bin/python bench/gc.py [--builds 40] [--keep 5] [--mb 8] [--json]

A project publishes --builds builds of --mb MB each (half of each build's data shared with the
build before it, 256 KB chunks), replicated to the second region; retention keeps the newest
--keep. Figures, each beside what it is compared to:
- dryRunSeconds and passSeconds: one pass that expires the rest and sweeps both stores;
- passSeconds against rawSeconds: listing both stores and deleting as many objects with boto3
  DeleteObjects on the same servers, the least a sweep does (the pass also expires, archives
  and marks);
- writerWaitSeconds: how long a publish that arrives while the sweep holds the stores waited at
  the fence, against passSeconds (a writer waits at most for the sweep).
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from pathlib import Path

from gantry.actors.retention.collector import GarbageCollector, Options
from gantry.archive.files import Archiver
from gantry.artifacts.blobstore import chunk_key, manifest_key
from gantry.artifacts.publish import publish
from gantry.cluster.services import start_redis, start_s3
from gantry.cluster.stack import Stack
from gantry.state import State
from gantry.statuses import BuildStatus as S
from gantry.topology import StackConfig

AVG = 256 << 10


def output(root: Path, i: int, mb: int) -> Path:
    d = root / f"b{i}"
    d.mkdir(parents=True)
    half = mb << 19
    (d / "shared").write_bytes(random.Random(i // 2).randbytes(half))   # shared with the build before
    (d / "own").write_bytes(random.Random(10_000 + i).randbytes(half))
    return d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builds", type=int, default=40)
    ap.add_argument("--keep", type=int, default=5)
    ap.add_argument("--mb", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gantry-bench-gc-"))
    stack = Stack(tmp / "home")
    stack.home.mkdir(parents=True)
    try:
        url = start_redis(stack, "benchpass", "", "", "")
        regions = [start_s3(stack, r, "bench", "benchsecret") for r in ("us", "eu")]
        cfg = StackConfig(home=str(stack.home), redis_url=url, regions=regions, s3_access_key="bench",
                          s3_secret_key="benchsecret", jwt_secret_file="")
        from gantry.artifacts.blobstore import s3_for
        stores = {r.name: s3_for(r, "bench", "benchsecret") for r in regions}
        for s in stores.values():
            s.ensure_bucket()
        state = State(url)
        state.projects.put("bench", "/src/bench", {"retention": json.dumps({"keepLast": a.keep})})
        for i in range(a.builds):
            b = state.builds.create("bench", "a" * 40)["buildID"]
            m, _ = publish(output(tmp / "out", i, a.mb), stores["us"], AVG)
            for c in m.unique_chunks():
                stores["eu"].put(chunk_key(c.digest), stores["us"].get(chunk_key(c.digest)))
            stores["eu"].put(manifest_key(m.manifest_digest), m.to_bytes())
            for to, f in ((S.BUILDING, {}), (S.DEPLOYING, {"artifactDigest": m.manifest_digest}), (S.SUCCEEDED, {})):
                state.builds.transition(b, to, fields=f)
        time.sleep(1.5)   # S3 write times are whole seconds
        objects = sum(len(s.list("chunks/")) + len(s.list("manifests/")) for s in stores.values())
        gc = GarbageCollector(state, cfg, stores, Options(grace_s=0), Archiver(state, stores["us"]).move)
        t = time.monotonic()
        dry = gc.run(dry_run=True)
        dry_s = time.monotonic() - t

        waited = {}

        def writer():
            while not state.retention.sweeping():   # arrive while the sweep holds the stores
                time.sleep(0.002)
            t0 = time.monotonic()
            with state.retention.writing("publish:bench"):
                waited["s"] = time.monotonic() - t0
        w = threading.Thread(target=writer)
        t = time.monotonic()
        w.start()
        done = gc.run()
        pass_s = time.monotonic() - t
        w.join()
        deleted = sum(r["reclaimedObjects"] for r in done["regions"].values())

        # the bound: list both stores, delete as many objects straight through DeleteObjects
        keys = [f"chunks/blake3/ff/{i:064x}" for i in range(deleted // 2)]
        for s in stores.values():
            for k in keys:
                s.put(k, b"x" * 1024)
        t = time.monotonic()
        for s in stores.values():
            s.list_meta("chunks/"), s.list_meta("manifests/")
            s.delete(keys)
        raw_s = time.monotonic() - t
        out = {"builds": a.builds, "kept": a.keep, "mbPerBuild": a.mb, "objectsBefore": objects,
               "objectsDeleted": deleted, "bytesReclaimed": sum(r["reclaimedBytes"] for r in done["regions"].values()),
               "dryRunSeconds": round(dry_s, 2), "passSeconds": round(pass_s, 2),
               "rawSeconds": round(raw_s, 2), "deletesPerS": round(deleted / pass_s),
               "writerWaitSeconds": round(waited.get("s", -1), 2), "sweep": done["sweep"],
               "expired": len(done["projects"]["bench"]["expired"]),
               "dryRunWouldDelete": sum(r["reclaimedObjects"] for r in dry["regions"].values())}
        if a.json:
            print(json.dumps(out, indent=2))
        else:
            print(f"{a.builds} builds x {a.mb} MB, keep {a.keep}: {objects} objects in 2 stores")
            print(f"dry run          {out['dryRunSeconds']:8.2f} s   (would delete {out['dryRunWouldDelete']})")
            print(f"pass             {out['passSeconds']:8.2f} s   expired {out['expired']}, deleted {deleted} "
                  f"objects, {out['bytesReclaimed'] / 2**20:.0f} MiB ({out['sweep']})")
            print(f"raw list+delete  {out['rawSeconds']:8.2f} s   (pass / raw {pass_s / raw_s:.1f}x; "
                  f"{out['deletesPerS']} objects deleted per second of the pass)")
            print(f"writer waited    {out['writerWaitSeconds']:8.2f} s   (bound: the pass, {out['passSeconds']:.2f} s)")
        return 0
    finally:
        stack.down(say=lambda *_: None)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
