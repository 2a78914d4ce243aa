"""Deploys on the real stack: node daemon processes, coordinators, waves, rollback."""
import json
import signal
import threading
import time

import ray

from gantry.state import State
from gantry.artifacts.blobstore import manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.constants import NAMESPACE, coordinator_name
from conftest import client, host_endpoint
from gantry.artifacts import bitfield
from gantry.auth import issue_host
from helpers import RoguePeer, commit, peer_tls, wait_build, wait_until

FAST = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}
FINAL = {"COMPLETED", "ROLLED_BACK", "ABORTED", "SUPERSEDED", "FAILED"}


def build(api, project, sha):
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    return b


def wait_deployment(api, project, dep_id, until=FINAL, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while True:
        d = api.get(f"/projects/{project}/deployments/{dep_id}").json()
        if d.get("status") in until:
            return d
        assert time.monotonic() < deadline, f"deployment still {d.get('status')}: {d}"
        time.sleep(0.3)


def dc_phase(api, project, dep_id, dc):
    d = api.get(f"/projects/{project}/deployments/{dep_id}").json()
    return next(x["phase"] for region in d["regions"] for x in region["dcs"] if x["dc"] == dc)


def deploy(api, project, build_id, strategy=FAST):
    r = api.post(f"/projects/{project}/deployments", json={"buildID": build_id, "strategy": strategy})
    assert r.status_code == 202, r.text
    return r.json()["deploymentID"]


def current(stack, host, project):
    return stack.home / "hosts" / host / "projects" / project / "current"


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name not in (".complete", ".gantry-hooks.log")}


def test_deploy_reaches_every_host_then_a_delta_moves_only_new_chunks(api, stack, new_project):
    seed = "python3 -c \"import random; random.seed(3); open('dist/blob', 'wb').write(random.randbytes(6 << 20))\""
    project, sha1, repo = new_project(f"mkdir -p dist && {seed} && cp note.txt dist/", files={"note.txt": "one"})
    b1 = build(api, project, sha1)
    d = wait_deployment(api, project, deploy(api, project, b1))
    assert d["status"] == "COMPLETED" and d["hosts"]["active"] == d["hosts"]["total"] == 4
    records = [h for dc in ("us-east-a", "eu-west-a") for h in State(stack.config().redis_url).hosts.in_dc(dc)]
    ips = {h["address"].rsplit(":", 1)[0] for h in records}
    assert len(ips) == len(records) == 4 and all(ip.startswith("127.0.") for ip in ips)   # a machine each
    assert any(json.loads(h["lastDownload"])["bytesFromPeers"] > 0 for h in records)   # ...that swap chunks
    expected = None
    for host in stack.hosts():
        files = tree(current(stack, host, project))
        expected = expected or files
        assert files == expected and files["note.txt"] == b"one" and len(files["blob"]) == 6 << 20
    hosts = {h["hostID"]: h for h in api.get(f"/projects/{project}/hosts").json()}
    assert all(h["activeBuildID"] == b1 and h["state"] == "active" for h in hosts.values())

    b2 = build(api, project, commit(repo, {"note.txt": "two"}))
    assert wait_deployment(api, project, deploy(api, project, b2))["status"] == "COMPLETED"
    store = State(stack.config().redis_url)
    for dc in ("us-east-a", "eu-west-a"):
        for h in store.hosts.in_dc(dc):
            dl = json.loads(h["lastDownload"])
            assert dl["buildID"] == b2
            assert dl["bytesFromPeers"] + dl["bytesFromOrigin"] < (6 << 20) * 0.2, dl
            assert (current(stack, h["hostID"], project) / "note.txt").read_text() == "two"


def test_failing_health_rolls_back_automatically(api, stack, new_project):
    project, sha1, repo = new_project("mkdir -p dist && echo ok > dist/state")
    good = build(api, project, sha1)
    assert wait_deployment(api, project, deploy(api, project, good))["status"] == "COMPLETED"
    (repo / "gantry.toml").write_text('[build]\ncommand = "mkdir -p dist && echo sick > dist/state"\n'
                                      'output = "dist"\n[deploy]\nhealth = "grep -q ok state"\n')
    bad = build(api, project, commit(repo, {"x": "1"}))
    d = wait_deployment(api, project, deploy(api, project, bad))
    assert d["status"] == "ROLLED_BACK" and "failed" in d["reason"], d
    wait_until(lambda: all((current(stack, host, project) / "state").read_text() == "ok\n" for host in stack.hosts()),
               30, "every host back on the good build")


def test_rollback_by_api_pause_and_resume(api, stack, new_project):
    project, sha1, repo = new_project("mkdir -p dist && echo one > dist/v")
    b1 = build(api, project, sha1)
    assert wait_deployment(api, project, deploy(api, project, b1))["status"] == "COMPLETED"
    b2 = build(api, project, commit(repo, {"gantry.toml": '[build]\ncommand = "mkdir -p dist && echo two > dist/v"\noutput = "dist"\n'}))
    dep = deploy(api, project, b2, {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 4})
    r = api.post(f"/projects/{project}/deployments/{dep}", params={"op": "PAUSE"})
    assert r.status_code == 200 and r.json()["status"] == "PAUSED"
    time.sleep(3)   # unpaused, the first wave's host is active on b2 by then (it stages b2 first)
    paused = api.get(f"/projects/{project}/deployments/{dep}").json()
    assert paused["status"] == "PAUSED" and paused["hosts"]["active"] == 0, paused
    assert api.post(f"/projects/{project}/deployments/{dep}", params={"op": "PAUSE"}).status_code == 409
    assert api.post(f"/projects/{project}/deployments/{dep}", params={"op": "RESUME"}).status_code == 200
    assert wait_deployment(api, project, dep)["status"] == "COMPLETED"
    assert all((current(stack, h, project) / "v").read_text() == "two\n" for h in stack.hosts())

    r = api.post(f"/projects/{project}/rollback", json={})
    assert r.status_code == 202 and r.json()["buildID"] == b1
    back = wait_deployment(api, project, r.json()["deploymentID"])
    assert back["status"] == "COMPLETED" and back["strategy"]["steps"] == [1.0]
    assert back["prediction"] is None   # a rollback is never predicted: it starts at once
    assert api.get(f"/projects/{project}/deployments/{dep}").json()["prediction"]["predictedSeconds"] > 0
    assert all((current(stack, h, project) / "v").read_text() == "one\n" for h in stack.hosts())


def test_only_succeeded_builds_deploy(api, new_project):
    project, sha, _ = new_project("exit 1")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b)["buildStatus"] == "FAILED"
    r = api.post(f"/projects/{project}/deployments", json={"buildID": b})
    assert r.status_code == 409 and r.json()["error"] == "build is not deployable"
    assert api.post(f"/projects/{project}/deployments", json={"buildID": "f" * 32}).status_code == 404
    assert api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": {"steps": [0]}}).status_code == 422
    assert api.post(f"/projects/{project}/rollback", json={}).status_code == 409


def test_daemon_killed_mid_download_resumes(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && head -c 41943040 /dev/urandom > dist/blob")
    b = build(api, project, sha)
    victim = "eu-west-a-h1"
    stack.stop_process(f"host-{victim}")
    stack.start_host(victim, "eu-west", "eu-west-a", max_down_mbps=8)   # slow enough to catch mid-way
    dep = deploy(api, project, b)
    cfg = stack.config()
    manifest_digest = api.get(f"/projects/{project}/builds/{b}").json()["artifact"]["digest"]
    manifest = Manifest.from_bytes(s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key)
                                   .get(manifest_key(manifest_digest)))
    cache = ChunkCache(stack.home / "hosts" / victim / "cache")
    deadline = time.monotonic() + 120
    while len(cache.held(manifest)) < 3:   # this build's chunks, not earlier builds'
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)
    stack.stop_process(f"host-{victim}", signal.SIGKILL)
    held = {c.digest: c.size for c in manifest.unique_chunks() if cache.has(c.digest)}
    assert 0 < len(held) < len(manifest.unique_chunks())
    stack.start_host(victim, "eu-west", "eu-west-a")
    assert wait_deployment(api, project, dep)["status"] == "COMPLETED"
    h = next(x for x in State(cfg.redis_url).hosts.in_dc("eu-west-a") if x["hostID"] == victim)
    dl = json.loads(h["lastDownload"])
    assert dl["buildID"] == b
    assert dl["bytesFromPeers"] + dl["bytesFromOrigin"] == manifest.size - sum(held.values())  # resumed
    assert len((current(stack, victim, project) / "blob").read_bytes()) == 40 << 20


def test_coordinator_killed_mid_rollout_resumes(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && echo c > dist/c")
    b = build(api, project, sha)
    dep = deploy(api, project, b, {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 3})
    wait_until(lambda: dc_phase(api, project, dep, "us-east-a") == "BAKING", 60, "the canary to bake")
    stack.connect()
    ray.kill(ray.get_actor(coordinator_name("us-east-a"), namespace=NAMESPACE), no_restart=False)
    d = api.get(f"/projects/{project}/deployments/{dep}").json()
    assert d["status"] == "IN_PROGRESS" and d["hosts"]["active"] < 4, d   # killed mid-flight
    d = wait_deployment(api, project, dep)
    assert d["status"] == "COMPLETED" and d["hosts"]["active"] == 4


def test_a_peer_serving_corrupt_chunks_is_detected_and_avoided(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && head -c 4194304 /dev/urandom > dist/blob")
    b = build(api, project, sha)
    digest = api.get(f"/projects/{project}/builds/{b}").json()["artifact"]["digest"]
    rogue, stop = RoguePeer(peer_tls(stack)), threading.Event()   # a host with a certificate, serving garbage
    tokens = {dc: issue_host(stack.config().jwt_secret(), f"rogue-{dc}", dc) for dc in ("us-east-a", "eu-west-a")}

    n = api.get(f"/projects/{project}/builds/{b}").json()["artifact"]["chunks"]
    endpoints = {dc: host_endpoint(stack, tokens[dc], dc) for dc in tokens}

    said = {dc: {"state": "staged", "activeBuildID": None, "about": b} for dc in tokens}

    def announce():   # a seed that claims every chunk, says it staged and then runs the build, at the real endpoints
        while not stop.is_set():
            for region, dc in (("us-east", "us-east-a"), ("eu-west", "eu-west-a")):
                r = endpoints[dc].post("/heartbeat", json={
                    "hostID": f"rogue-{dc}", "region": region, "address": rogue.address,
                    "projects": {project: said[dc]},
                    "artifacts": [{"artifact": digest, "chunks": n, "bits": bitfield.encode(bitfield.full(n)),
                                   "complete": True}]})
                if r.status_code == 200 and (r.json()["projects"].get(project) or {}).get("targetBuildID") == b:
                    said[dc] = {"state": "active", "activeBuildID": b, "about": b}
            stop.wait(0.5)
    t = threading.Thread(target=announce, daemon=True)
    t.start()
    try:
        wait_until(lambda: {f"rogue-{dc}" for dc in tokens} <= {h["hostID"] for h in api.get(f"/projects/{project}/hosts").json()},
                   30, "the rogue hosts to register")
        assert wait_deployment(api, project, deploy(api, project, b))["status"] == "COMPLETED"
    finally:
        stop.set()
        t.join()
        rogue.stop()
    store = State(stack.config().redis_url)
    real = [h for dc in ("us-east-a", "eu-west-a") for h in store.hosts.in_dc(dc) if not h["hostID"].startswith("rogue")]
    blacklisted = [json.loads(h["lastDownload"])["blacklisted"] for h in real]
    assert any(rogue.address in bl for bl in blacklisted), blacklisted
    blobs = {(current(stack, h["hostID"], project) / "blob").read_bytes() for h in real}
    assert len(blobs) == 1 and len(blobs.pop()) == 4 << 20
    # let the rogue hosts be marked lost before later tests plan their waves
    deadline = time.monotonic() + 30
    while any(h.get("state") != "lost" for dc in ("us-east-a", "eu-west-a") for h in store.hosts.in_dc(dc)
              if h["hostID"].startswith("rogue")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
