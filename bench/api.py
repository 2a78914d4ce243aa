"""API throughput and latency on a local stack this script starts and stops.

    .venv/bin/python bench/api.py [--seconds N] [--json]

Measures: queue-to-BUILDING latency (server timestamps startedAt - createdAt, one build at a
time on idle builders), POST build throughput (4 client threads), GET list and GET one latency,
GET one answered 304 from its ETag, signed GitHub webhook deliveries, and the archive: how fast
finished builds move to Parquet and GET list latency once the pages come from the archive.
All traffic goes to 127.0.0.1. With --json the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from gantry.state import State, TransitionRefused
from gantry.cluster.stack import Stack, free_port
from gantry.settings import Settings
from gantry.auth import issue
from gantry.statuses import BUILD_TERMINAL, BuildStatus
from sample_repo import commit_build

VERIFY: list = [True]   # httpx's verify= for the stack under test (its CA), set once the stack is up


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def timed_loop(fn, seconds: float, threads: int) -> list[float]:
    """Call fn from `threads` threads for `seconds`; returns each call's latency in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker():
        with httpx.Client(timeout=30, verify=VERIFY[0]) as c:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                fn(c)
                dt_ = time.perf_counter() - t0
                with lock:
                    latencies.append(dt_)
    ts_ = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts_:
        t.start()
    for t in ts_:
        t.join()
    return latencies


def deliver(c: httpx.Client, base: str, secret: str, sha: str) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": sha, "pusher": {"name": "bench"}}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    c.post(f"{base}/webhooks/github/bench", content=body, headers={
        "X-Hub-Signature-256": sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": uuid.uuid4().hex}).raise_for_status()


def bare_api(cfg, work: Path) -> dict:
    """Start the baseline (bench/bare_api.py) under uvicorn on loopback; {url, proc}."""
    port = free_port()
    tls = (["--ssl-certfile", cfg.tls_cert_file, "--ssl-keyfile", cfg.tls_key_file] if cfg.tls_cert_file else [])
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), "bare_api:app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *tls],
                            env={**os.environ, "BENCH_REDIS_URL": cfg.redis_url})
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/projects/bench/builds", verify=VERIFY[0], timeout=2).raise_for_status()
            return {"url": url, "proc": proc}
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the bare baseline app did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10, help="length of each load phase")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rate-limits", choices=["on", "off"], default="on",
                    help="off: no token buckets at all, to see what they cost")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gantry-bench-api-"))
    # One user and one project drive all the load: limits high enough never to refuse, so each
    # request still pays for its token-bucket scripts (or, with --rate-limits off, none at all).
    rate = "1e6" if a.rate_limits == "on" else "0"
    os.environ.update(GANTRY_RATE_USER_PER_S=rate, GANTRY_RATE_USER_BURST="1e6",
                      GANTRY_RATE_PROJECT_PER_S=rate, GANTRY_RATE_PROJECT_BURST="1e6")
    stack = Stack(work / "home")
    stack.up(api_port=free_port(), regions=("us-east",), builders=1, say=lambda *_: None)
    try:
        cfg = stack.config()
        VERIFY[0] = cfg.http_verify()
        sha = commit_build(work / "repo", "mkdir -p dist && echo ok > dist/ok")
        auth = {"Authorization": "Bearer " + issue(cfg.jwt_secret(), "bench", admin=True)}
        base = cfg.api_url
        httpx.put(verify=VERIFY[0], url=f"{base}/projects/bench", json={"repoURL": str(work / "repo")}, headers=auth).raise_for_status()

        # 1. queue -> BUILDING on an idle builder, one build at a time
        q2b = []
        with httpx.Client(base_url=base, headers=auth, timeout=30, verify=VERIFY[0]) as c:
            for _ in range(10):
                b = c.post("/projects/bench/builds", json={"commitSHA": sha}).json()["buildID"]
                while True:
                    rec = c.get(f"/projects/bench/builds/{b}").json()
                    if rec["buildStatus"] in BUILD_TERMINAL:
                        break
                    time.sleep(0.05)
                q2b.append((ts(rec["startedAt"]) - ts(rec["createdAt"])) * 1000)
            one_id = b

        # 2. POST throughput (builds pile up in the queue; that is the point)
        posts = timed_loop(lambda c: c.post(f"{base}/projects/bench/builds", json={"commitSHA": sha},
                                            headers=auth).raise_for_status(), a.seconds, 4)
        # 3. GET list and GET one; the list also from a bare FastAPI app over the same Redis (the baseline)
        bare = bare_api(cfg, work)
        try:
            lists, bare_lists = [], []
            for _ in range(2):   # interleaved, so both see the same machine
                lists += timed_loop(lambda c: c.get(f"{base}/projects/bench/builds", params={"limit": 20},
                                                    headers=auth).raise_for_status(), a.seconds / 2, 4)
                bare_lists += timed_loop(lambda c: c.get(f"{bare['url']}/projects/bench/builds", params={"limit": 20}
                                                         ).raise_for_status(), a.seconds / 2, 4)
        finally:
            bare["proc"].terminate()
            bare["proc"].wait(10)
        ones = timed_loop(lambda c: c.get(f"{base}/projects/bench/builds/{one_id}",
                                          headers=auth).raise_for_status(), a.seconds, 4)
        etag = httpx.get(verify=VERIFY[0], url=f"{base}/projects/bench/builds/{one_id}", headers=auth).headers["ETag"]
        not_modified = timed_loop(lambda c: c.get(f"{base}/projects/bench/builds/{one_id}",
                                                  headers={**auth, "If-None-Match": etag}), a.seconds, 4)
        # 4. signed webhook deliveries, each a new push (each queues a build)
        secret = "bench-webhook-secret"
        httpx.put(verify=VERIFY[0], url=f"{base}/projects/bench", json={"repoURL": str(work / "repo"), "webhookSecret": secret},
                  headers=auth).raise_for_status()
        hooks = timed_loop(lambda c: deliver(c, base, secret, sha), a.seconds, 4)
        # 5. archive: finish everything queued, move it all to Parquet, then page through it
        store = State(cfg.redis_url)
        for m in store.builds.index("bench", 1_000_000, None):
            try:
                store.builds.transition(m.split(":")[1], BuildStatus.CANCELLED)
            except TransitionRefused:
                pass
        t0 = time.perf_counter()
        moved = httpx.post(verify=VERIFY[0], url=f"{base}/admin/archive", params={"olderThanS": 0}, headers=auth, timeout=600).json()["moved"]
        archive_s = time.perf_counter() - t0
        archived_lists = timed_loop(lambda c: c.get(f"{base}/projects/bench/builds", params={"limit": 20},
                                                    headers=auth).raise_for_status(), a.seconds, 4)
        t0 = time.perf_counter()
        walked, cursor = 0, None
        with httpx.Client(base_url=base, headers=auth, timeout=30, verify=VERIFY[0]) as c:
            while True:
                page = c.get("/projects/bench/builds", params={"limit": 100, **({"nextCursor": cursor} if cursor else {})}).json()
                walked += len(page["builds"])
                cursor = page["nextCursor"]
                if not cursor:
                    break
        walk_s = time.perf_counter() - t0
    finally:
        stack.down(say=lambda *_: None)

    result = {
        "postPerS": round(len(posts) / a.seconds, 1),
        "getListP50Ms": round(pct(lists, 50) * 1000, 2),
        "getListP99Ms": round(pct(lists, 99) * 1000, 2),
        "bareListP50Ms": round(pct(bare_lists, 50) * 1000, 2),
        "bareListP99Ms": round(pct(bare_lists, 99) * 1000, 2),
        "listP50Ratio": round(pct(lists, 50) / pct(bare_lists, 50), 2),
        "getOneP99Ms": round(pct(ones, 99) * 1000, 2),
        "queueToBuildingP50Ms": round(statistics.median(q2b), 1),
        "getOne304P50Ms": round(pct(not_modified, 50) * 1000, 2),
        "webhookPerS": round(len(hooks) / a.seconds, 1),
        "webhookP99Ms": round(pct(hooks, 99) * 1000, 2),
        "archivedBuilds": moved.get("bench", 0),
        "archivePerS": round(moved.get("bench", 0) / archive_s, 1),
        "getListArchivedP50Ms": round(pct(archived_lists, 50) * 1000, 2),
        "getListArchivedP99Ms": round(pct(archived_lists, 99) * 1000, 2),
        "walkArchivedBuilds": walked,
        "walkArchivedS": round(walk_s, 2),
    }
    print(f"POST /builds        {result['postPerS']:>8} req/s   ({len(posts)} in {a.seconds:g}s, 4 clients; goal >= 150)")
    print(f"GET  /builds        p50 {result['getListP50Ms']:>7} ms   p99 {result['getListP99Ms']} ms "
          f"({len(lists) / a.seconds:.0f} req/s)")
    print(f"  the bare baseline p50 {result['bareListP50Ms']:>7} ms   p99 {result['bareListP99Ms']} ms "
          f"({len(bare_lists) / a.seconds:.0f} req/s): gantry/bare p50 {result['listP50Ratio']}x (goal: <= 2x; "
          f"p99 goal <= 60 ms)")
    print(f"GET  /builds/{{id}}   p99 {result['getOneP99Ms']:>7} ms   ({len(ones) / a.seconds:.0f} req/s)")
    print(f"queue -> BUILDING   p50 {result['queueToBuildingP50Ms']:>7} ms   (the scheduler polls every "
          f"{Settings().scheduler_poll_s * 1000:g} ms and is nudged on each POST)")
    print(f"GET  /builds/{{id}}   304 p50 {result['getOne304P50Ms']:>5} ms   (If-None-Match with its ETag)")
    print(f"POST /webhooks      {result['webhookPerS']:>8} req/s   p99 {result['webhookP99Ms']} ms (signed pushes)")
    print(f"archive             {result['archivedBuilds']} builds in {archive_s:.1f}s = {result['archivePerS']} builds/s")
    print(f"GET  /builds        p50 {result['getListArchivedP50Ms']:>7} ms   p99 {result['getListArchivedP99Ms']} ms "
          f"(pages from the Parquet archive)")
    print(f"walk all            {walked} builds, 100 a page, in {result['walkArchivedS']} s")
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
