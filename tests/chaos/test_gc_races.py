"""Chaos on the real stack: garbage collection with a zero grace period, pass after pass, while
builds publish and save their caches, replicate to the second region and deploy to hosts.

Every build shares a 4 MB file, so each publish reuses chunks that an expiring build also holds.
Each operation must complete; afterwards every kept build (pinned, run by the hosts, the newest)
has every chunk in every region and deploys again, the expired one's own chunks are gone, and its
record (archived) says why it went."""
import os
import threading
import time

from gantry.artifacts.blobstore import chunk_key, manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from gantry.state import State
from helpers import git, reassemble, wait_build

FAST = {"steps": [1.0], "bakeS": 0}
COMMAND = ("mkdir -p out ~/.stash && cp shared.bin out/ && head -c 1500000 /dev/urandom > out/own && "
           "head -c 1000000 /dev/urandom > ~/.stash/blob")


def repo_with_shared_file(path):
    """A repository whose 4 MB file every build ships, unlike any other run's (a chunk another
    project's kept build also holds would rightly stay)."""
    path.mkdir(parents=True)
    git(path.parent, "init", "-q", "-b", "main", str(path))
    (path / "shared.bin").write_bytes(os.urandom(4_000_000))
    return path


def commit(repo, version: str) -> str:
    (repo / "VERSION").write_text(version)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", version)
    return git(repo, "rev-parse", "HEAD")


def build(api, project, sha) -> dict:
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    return wait_build(api, project, b, timeout_s=240)


def deploy(api, project, build_id) -> dict:
    r = api.post(f"/projects/{project}/deployments", json={"buildID": build_id, "strategy": FAST})
    assert r.status_code == 202, r.text
    return r.json()["deploymentID"]


def finished(api, project, dep_id, timeout_s=240) -> dict:
    deadline = time.monotonic() + timeout_s
    while (d := api.get(f"/projects/{project}/deployments/{dep_id}").json())["status"] in ("IN_PROGRESS", "PAUSED"):
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    return d


def manifest_of(stores, rec: dict) -> Manifest:
    digest = rec["artifact"]["digest"]
    return Manifest.from_bytes(stores["us-east"].get(manifest_key(digest)), digest)


def published_manifest(api, stores, project, build_id) -> Manifest:
    """The build's manifest, read as soon as it is published (DEPLOYING: not yet expirable)."""
    deadline = time.monotonic() + 240
    while not (rec := api.get(f"/projects/{project}/builds/{build_id}").json()).get("artifact"):
        assert time.monotonic() < deadline and rec["buildStatus"] in ("QUEUED", "BUILDING"), rec
        time.sleep(0.2)
    return manifest_of(stores, rec)


def chunks_in(stores, digest: str) -> dict[str, bool]:
    manifest = Manifest.from_bytes(stores["us-east"].get(manifest_key(digest)), digest)
    return {r: all(s.has(chunk_key(c.digest)) for c in manifest.unique_chunks()) for r, s in stores.items()}


def test_gc_with_zero_grace_during_publish_replication_download_and_cache_save(api, stack, tmp_path):
    cfg = stack.config()
    stores = {r.name: s3_for(r, cfg.s3_access_key, cfg.s3_secret_key) for r in cfg.regions}
    project = f"gc-{int(time.time())}"
    repo = repo_with_shared_file(tmp_path / project)
    r = api.put(f"/projects/{project}", json={
        "repoURL": str(repo), "build": {"command": COMMAND, "output": "out", "cache": ["~/.stash"]},
        "retention": {"keepLast": 1, "keepDeployedDays": 0}})
    assert r.status_code == 201, r.text

    pinned = build(api, project, commit(repo, "1"))
    assert pinned["buildStatus"] == "SUCCEEDED", pinned
    assert api.put(f"/projects/{project}/builds/{pinned['buildID']}/pin").json()["pinned"] is True
    deployed = build(api, project, commit(repo, "2"))
    assert deployed["buildStatus"] == "SUCCEEDED", deployed

    reports, stop = [], threading.Event()

    def collect():
        while not stop.is_set():
            g = api.post("/admin/gc", params={"graceS": 0}, timeout=300)
            assert g.status_code == 200, g.text
            reports.append(g.json())
    gc = threading.Thread(target=collect, daemon=True)
    gc.start()
    try:
        # hosts download `deployed` while two more builds publish, save their caches and replicate
        dep = deploy(api, project, deployed["buildID"])
        shas = [commit(repo, "3"), commit(repo, "4")]
        ids = [api.post(f"/projects/{project}/builds", json={"commitSHA": s}).json()["buildID"] for s in shas]
        doomed_manifest = published_manifest(api, stores, project, ids[0])   # before it can expire
        doomed, newest = (wait_build(api, project, b, timeout_s=240) for b in ids)
        assert finished(api, project, dep)["status"] == "COMPLETED"
        deadline = time.monotonic() + 60
        while not any(rep["projects"].get(project, {}).get("expired") for rep in reports):
            assert time.monotonic() < deadline, reports[-1:]
            time.sleep(0.5)
    finally:
        stop.set()
        gc.join(300)
    assert not gc.is_alive()
    assert doomed["buildStatus"] in ("SUCCEEDED", "EXPIRED") and newest["buildStatus"] == "SUCCEEDED", (doomed, newest)
    sweeps = [rep["sweep"] for rep in reports]
    assert sweeps.count("swept") >= 2 and all(s == "swept" or "writers still in flight" in s for s in sweeps), sweeps
    finals = []
    for _ in range(3):   # a pass leaves for the next what is under a second old (S3 times are whole seconds)
        time.sleep(2)
        final = api.post("/admin/gc", params={"graceS": 0}).json()
        assert final["sweep"] == "swept", final
        finals.append(final["regions"])
        if all(t["youngObjects"] == 0 for t in final["regions"].values()):
            break

    # the expired build: gone from Redis to the archive, saying why; its own chunks swept; no deploy
    expired = api.get(f"/projects/{project}/builds/{doomed['buildID']}").json()
    assert expired["buildStatus"] == "EXPIRED" and "keepLast 1" in expired["expiredReason"], expired
    r = api.post(f"/projects/{project}/deployments", json={"buildID": doomed["buildID"]})
    assert r.status_code == 409 and r.json()["error"] == "build expired", r.text
    kept_chunks = {c.digest for b in (pinned, deployed, newest) for c in manifest_of(stores, b).chunks}
    own = {c.digest for c in doomed_manifest.chunks} - kept_chunks
    assert own and len(own) < len(doomed_manifest.unique_chunks()), "it shared chunks and had its own"
    for region, store in stores.items():
        left = [o for o in store.list_meta("chunks/") if o.key in {chunk_key(d) for d in own}]
        assert not any(store.has(chunk_key(d)) for d in own), (region, left, finals, final["startedAt"], time.time())
        assert not store.has(manifest_key(doomed["artifact"]["digest"])), region

    # every kept build: every chunk in every region, and each deploys again (hosts verify each chunk)
    for kept in (pinned, deployed, newest):
        assert chunks_in(stores, kept["artifact"]["digest"]) == {"us-east": True, "eu-west": True}, kept["buildID"]
        for region in cfg.regions:
            reassemble(stack, region, kept["artifact"]["digest"], tmp_path / f"{kept['buildID']}-{region.name}")
    for kept in (pinned, newest):
        assert finished(api, project, deploy(api, project, kept["buildID"]))["status"] == "COMPLETED", kept["buildID"]
    # the cache the last of the two builds saved is whole in the primary store
    cache = State(cfg.redis_url).caches.get(project, "main")
    assert cache and cache["buildID"] in (doomed["buildID"], newest["buildID"]), cache
    for digest in cache["paths"].values():
        assert chunks_in(stores, digest)["us-east"]
