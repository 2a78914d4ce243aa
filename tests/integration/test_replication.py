"""Replication through the Ray object store to every region, on the real stack, with faults."""
import time

import ray

from gantry.constants import NAMESPACE, replicator_name
from gantry.state import State
from gantry.artifacts.blobstore import chunk_key, manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from helpers import commit, reassemble, wait_build, wait_until

SEEDED = ("python3 -c \"import os, random; os.makedirs('dist', exist_ok=True); random.seed(7); "
          "open('dist/blob', 'wb').write(random.randbytes({n}))\"; cp note.txt dist/")
RANDOM = "mkdir -p dist; head -c {n} /dev/urandom > dist/blob"
TARGET = "eu-west"


def row(api, project, b, region=TARGET):
    rec = api.get(f"/projects/{project}/builds/{b}").json()
    return next(r for r in rec["replication"] if r["region"] == region)


def wait_mid_job(api, project, b, min_chunks=5, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while True:
        r = row(api, project, b) if api.get(f"/projects/{project}/builds/{b}").json()["replication"] else None
        if r and r["replicationStatus"] == "PENDING" and r["chunksTransferred"] >= min_chunks:
            return r
        assert time.monotonic() < deadline, f"replication never got under way: {r}"
        assert not r or r["replicationStatus"] == "PENDING", f"finished before the fault: {r}"
        time.sleep(0.05)


def unique_chunks(stack, digest):
    cfg = stack.config()
    return Manifest.from_bytes(s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key)
                               .get(manifest_key(digest))).unique_chunks()


def test_rebuild_with_a_small_change_moves_only_changed_chunks(api, stack, new_project, tmp_path):
    project, sha1, repo = new_project(SEEDED.format(n=8 << 20), files={"note.txt": "version one"})
    b1 = api.post(f"/projects/{project}/builds", json={"commitSHA": sha1}).json()["buildID"]
    first = wait_build(api, project, b1)
    assert first["buildStatus"] == "SUCCEEDED", first
    sha2 = commit(repo, {"note.txt": "version two, a little longer"})
    b2 = api.post(f"/projects/{project}/builds", json={"commitSHA": sha2}).json()["buildID"]
    second = wait_build(api, project, b2)
    assert second["buildStatus"] == "SUCCEEDED", second
    size = second["artifact"]["size"]
    for r in second["replication"]:
        assert r["replicationStatus"] == "REPLICATED"
        assert r["bytesTransferred"] <= 0.03 * size, r
        assert r["chunksSkipped"] > 0
    eu = row(api, project, b2)
    assert eu["bytesTransferred"] > 0  # the changed chunk did move
    release = reassemble(stack, next(r for r in stack.config().regions if r.name == TARGET),
                         second["artifact"]["digest"], tmp_path / "release")
    assert (release / "note.txt").read_text() == "version two, a little longer"


def test_replicator_killed_mid_job_resumes_without_resending(api, stack, new_project, tmp_path):
    project, sha, _ = new_project(RANDOM.format(n=40 << 20))
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    wait_mid_job(api, project, b)
    stack.connect()
    ray.kill(ray.get_actor(replicator_name(TARGET), namespace=NAMESPACE), no_restart=False)
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    r = row(api, project, b)
    assert r["chunksTransferred"] + r["chunksSkipped"] == len(unique_chunks(stack, rec["artifact"]["digest"]))
    reassemble(stack, next(x for x in stack.config().regions if x.name == TARGET),
               rec["artifact"]["digest"], tmp_path / "release")


def test_region_store_down_mid_job_then_back(api, stack, new_project, tmp_path):
    project, sha, _ = new_project(RANDOM.format(n=40 << 20))
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    wait_mid_job(api, project, b)
    stack.stop_process(f"s3-{TARGET}")
    wait_until(lambda: row(api, project, b)["retries"] >= 1, 60, "the replicator to meet the outage and retry")
    stack.respawn(f"s3-{TARGET}")
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    r = row(api, project, b)
    assert r["retries"] >= 1 and r["replicationStatus"] == "REPLICATED"
    reassemble(stack, next(x for x in stack.config().regions if x.name == TARGET),
               rec["artifact"]["digest"], tmp_path / "release")


def test_corrupt_chunk_in_primary_is_detected_not_replicated(api, stack, new_project):
    stack.stop_process(f"s3-{TARGET}")  # hold replication back while the primary copy rots
    try:
        project, sha, _ = new_project(RANDOM.format(n=2 << 20))
        b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
        rec = wait_build(api, project, b, until={"DEPLOYING", "FAILED"})
        assert rec["buildStatus"] == "DEPLOYING", rec
        victim = unique_chunks(stack, rec["artifact"]["digest"])[1]
        cfg = stack.config()
        path = stack.home / "s3" / cfg.primary.name / cfg.primary.bucket / chunk_key(victim.digest)
        path.write_bytes(path.read_bytes()[::-1])
    finally:
        stack.respawn(f"s3-{TARGET}")
    rec = wait_build(api, project, b, timeout_s=120)
    assert rec["buildStatus"] == "FAILED" and "does not match its digest in the primary store" in rec["error"]
    assert row(api, project, b)["replicationStatus"] == "FAILED"
    target = next(x for x in cfg.regions if x.name == TARGET)
    assert not s3_for(target, cfg.s3_access_key, cfg.s3_secret_key).has(chunk_key(victim.digest))
    assert State(cfg.redis_url).replication.due(TARGET) == []
