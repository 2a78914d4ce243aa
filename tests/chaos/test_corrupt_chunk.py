"""Chaos on the real stack: one flipped byte in one chunk of a region's blob store. The
deployment must COMPLETE in that region (the host that gets the bad copy has the store healed
from the primary and fetches again), and the store's copy must verify afterwards."""
import time

from gantry.artifacts.blobstore import chunk_key, manifest_key, s3_for
from gantry.artifacts.chunking import digest_of
from gantry.artifacts.manifest import Manifest
from helpers import wait_build

FAST = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}


def test_a_flipped_byte_in_a_regional_chunk_is_healed_and_the_deploy_completes(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && head -c 2000000 /dev/urandom > dist/blob")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b, timeout_s=240)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    cfg = stack.config()
    region = next(r for r in cfg.regions if r.name == "eu-west")
    store = s3_for(region, cfg.s3_access_key, cfg.s3_secret_key)
    manifest = Manifest.from_bytes(store.get(manifest_key(rec["artifact"]["digest"])), rec["artifact"]["digest"])
    victim = manifest.chunks[len(manifest.chunks) // 2].digest
    path = stack.home / "s3" / "eu-west" / region.bucket / chunk_key(victim)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    assert digest_of(store.get(chunk_key(victim))) != victim

    dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": FAST}).json()["deploymentID"]
    deadline = time.monotonic() + 240
    while (d := api.get(f"/projects/{project}/deployments/{dep}").json())["status"] not in (
            "COMPLETED", "ROLLED_BACK", "ABORTED", "FAILED"):
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    assert d["status"] == "COMPLETED", d
    eu = next(r for r in d["regions"] if r["region"] == "eu-west")
    assert eu["hosts"]["active"] == eu["hosts"]["total"] - eu["hosts"]["lost"] > 0, eu   # earlier tests may lose hosts
    assert digest_of(store.get(chunk_key(victim))) == victim      # the store's copy is healed
