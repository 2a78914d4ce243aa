"""Retention and garbage collection over a real redis-server and filesystem stores (no Ray): builds
expire by policy with their reasons, nothing kept loses a chunk, and the fence closes the race
between a publish that reuses stored chunks and a sweep."""
from __future__ import annotations

import json
import random
import threading
import time

import pytest

from gantry.archive.files import ArchiveReader, Archiver
from gantry.artifacts.blobstore import FsBlobStore, chunk_key, manifest_key
from gantry.artifacts.publish import publish
from gantry.actors.retention.collector import GarbageCollector, Options
from gantry.state import State
from gantry.state.deployments import BuildExpired
from gantry.statuses import BuildStatus as S, Concurrency
from gantry.topology import Region, StackConfig

SHA = "a" * 40
AVG = 64 << 10


@pytest.fixture
def world(redis_url, tmp_path):
    clock = {"t": 1_800_000_000_000}

    def tick():
        clock["t"] += 1000
        return clock["t"]
    state = State(redis_url, clock=tick)
    state.r.flushdb()
    stores = {"us": FsBlobStore(tmp_path / "us"), "eu": FsBlobStore(tmp_path / "eu")}
    stack = StackConfig(home=str(tmp_path), redis_url=redis_url, regions=[Region("us", "", ""), Region("eu", "", "")],
                        s3_access_key="", s3_secret_key="", jwt_secret_file="")
    state.projects.put("shop", "/src/shop", {"retention": json.dumps({"keepLast": 1, "keepDeployedDays": 0})})
    archiver = Archiver(state, stores["us"])
    gc = GarbageCollector(state, stack, stores, Options(grace_s=0, drain_s=30, slack_s=0), archiver.move)
    return state, stores, gc, tmp_path


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def output(tmp_path, name: str, files: dict[str, bytes]):
    d = tmp_path / "out" / name
    d.mkdir(parents=True)
    for f, data in files.items():
        (d / f).write_bytes(data)
    return d


def replicate(stores, manifest) -> None:
    for c in manifest.unique_chunks():
        stores["eu"].put(chunk_key(c.digest), stores["us"].get(chunk_key(c.digest)))
    stores["eu"].put(manifest_key(manifest.manifest_digest), manifest.to_bytes())


def succeed(state, build_id: str, manifest) -> None:
    state.builds.transition(build_id, S.BUILDING)
    state.builds.transition(build_id, S.DEPLOYING, fields={"artifactDigest": manifest.manifest_digest})
    state.builds.transition(build_id, S.SUCCEEDED)


def built(world, files: dict[str, bytes]) -> tuple[str, object]:
    state, stores, _, tmp_path = world
    build_id = state.builds.create("shop", SHA)["buildID"]
    manifest, _ = publish(output(tmp_path, build_id, files), stores["us"], AVG)
    replicate(stores, manifest)
    succeed(state, build_id, manifest)
    return build_id, manifest


def present(stores, manifest) -> dict[str, bool]:
    return {r: all(s.has(chunk_key(c.digest)) for c in manifest.chunks) and s.has(manifest_key(manifest.manifest_digest))
            for r, s in stores.items()}


SHARED = blob(1, 600_000)


def test_dry_run_says_what_would_go_and_why_then_gc_expires_archives_and_sweeps(world):
    state, stores, gc, _ = world
    old, old_m = built(world, {"shared": SHARED, "own": blob(2, 300_000)})
    new, new_m = built(world, {"shared": SHARED, "own": blob(3, 300_000)})
    before = {r: s.list("") for r, s in stores.items()}
    dry = gc.run(dry_run=True)
    assert dry["projects"]["shop"]["expired"] == [{"buildID": old, "reason": "successful build number 2 from the "
                                                   "newest (keepLast 1), never deployed, not pinned, not in use"}]
    assert dry["regions"]["eu"]["reclaimedObjects"] > 1 and dry["sweep"] == "dry run: nothing deleted"
    assert {r: s.list("") for r, s in stores.items()} == before and state.builds.get(old)["buildStatus"] == "SUCCEEDED"

    done = gc.run()
    assert done["sweep"] == "swept" and done["regions"] == dry["regions"]
    assert present(stores, new_m) == {"us": True, "eu": True}
    own = {c.digest for c in old_m.unique_chunks()} - {c.digest for c in new_m.chunks}
    assert own and not any(s.has(chunk_key(d)) for d in own for s in stores.values())
    # the expired build's record and log left Redis for the archive, which says why it went
    assert state.builds.get(old) is None
    rec = ArchiveReader(stores["us"]).get(state.archive.file_of("shop", old), old)[0]
    assert rec["buildStatus"] == "EXPIRED" and "keepLast 1" in rec["expiredReason"]
    assert state.retention.last_report()["sweep"] == "swept"
    assert gc.run()["regions"]["eu"]["reclaimedObjects"] == 0       # a second pass finds nothing more


def test_pinned_and_desired_builds_never_expire_and_an_expired_one_never_deploys(world):
    state, stores, gc, _ = world
    pinned, pinned_m = built(world, {"a": blob(4, 200_000)})
    desired, desired_m = built(world, {"a": blob(5, 200_000)})
    doomed, _ = built(world, {"a": blob(6, 200_000)})
    built(world, {"a": blob(7, 200_000)})
    assert state.retention.pin(pinned, True) == (True, "SUCCEEDED")
    state.deployments.create("shop", desired, None, {}, ["us", "eu"], "dana")
    gc.run()
    assert present(stores, pinned_m) == present(stores, desired_m) == {"us": True, "eu": True}
    assert state.builds.get(doomed) is None and state.archive.file_of("shop", doomed)
    # the atomic checks, whatever the collector read before
    assert state.retention.expire("shop", pinned, "test") == (False, "pinned")
    assert state.retention.expire("shop", desired, "test") == (False, "desired")
    assert state.retention.pin(pinned, False)[0] and state.retention.expire("shop", pinned, "test") == (True, "")
    with pytest.raises(BuildExpired):
        state.deployments.create("shop", pinned, None, {}, ["us"], "dana")
    assert state.retention.pin(pinned, True) == (False, "EXPIRED")


def test_a_build_whose_deployment_waits_in_the_queue_is_kept(world):
    state, stores, gc, _ = world
    running, _ = built(world, {"a": blob(8, 200_000)})
    waiting, waiting_m = built(world, {"a": blob(9, 200_000)})
    built(world, {"a": blob(10, 200_000)})   # the newest: keepLast 1 keeps it alone
    state.deployments.create("shop", running, None, {}, ["us", "eu"], "dana", concurrency=Concurrency.QUEUE)
    queued = state.deployments.create("shop", waiting, None, {}, ["us", "eu"], "dana", concurrency=Concurrency.QUEUE)
    assert queued["status"] == "QUEUED"
    report = gc.run()
    assert waiting not in {e["buildID"] for e in report["projects"]["shop"]["expired"]}
    assert present(stores, waiting_m) == {"us": True, "eu": True}


def gc_in_background(gc):
    out = {}
    t = threading.Thread(target=lambda: out.update(gc.run()), daemon=True)
    t.start()
    return t, out


def test_a_publish_that_reuses_an_expiring_builds_chunks_is_fenced_from_the_sweep(world):
    """The race the fence closes: a publish finds the shared chunks stored (only an expiring build
    holds them) and skips them; a sweep that marked before its manifest was recorded would delete
    them under it. The control case, without the fence, shows the sweep does exactly that."""
    state, stores, gc, tmp_path = world
    for fenced in (True, False):
        state.r.flushdb()
        state.projects.put("shop", "/src/shop", {"retention": json.dumps({"keepLast": 1})})
        built(world, {"shared": SHARED, "own": blob(8, 100_000)})            # will expire
        built(world, {"own": blob(9 + fenced, 100_000)})                      # the newest: kept
        new = state.builds.create("shop", SHA)["buildID"]
        state.builds.transition(new, S.BUILDING)
        fence = state.retention.writing(f"publish:{new}") if fenced else None
        if fence:
            fence.__enter__()
        manifest, stats = publish(output(tmp_path, new, {"shared": SHARED, "own": blob(20 + fenced, 100_000)}),
                                  stores["us"], AVG)
        assert stats.chunks_skipped > 0                                       # it reused stored chunks
        t, report = gc_in_background(gc)
        if fenced:
            time.sleep(1.0)
            assert t.is_alive() and not state.retention.sweeping()           # it waits for a quiet moment...
            with state.retention.writing("cache:shop"):                      # ...and other writers still enter
                pass
            assert present(stores, manifest)["us"]
        else:
            t.join(30)
        state.builds.transition(new, S.DEPLOYING, fields={"artifactDigest": manifest.manifest_digest})
        if fence:
            fence.__exit__(None, None, None)
        t.join(30)
        assert report["sweep"] == "swept"
        assert present(stores, manifest)["us"] is fenced, fenced


def test_a_sweep_that_finds_no_quiet_moment_holds_the_stores_and_waits_for_the_writers_in_flight(world):
    state, stores, gc, _ = world
    gc.o.drain_s = 2
    with state.retention.writing("publish:long"):
        t, report = gc_in_background(gc)
        deadline = time.monotonic() + 10
        while not state.retention.sweeping() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state.retention.sweeping() and t.is_alive()                   # new writers wait now
    t.join(10)
    assert report["sweep"] == "swept"


def test_a_writer_waits_while_a_sweep_holds_the_stores_and_a_dead_sweepers_lease_runs_out(world):
    state = world[0]
    token = state.retention.begin_sweep(ttl_s=1.0)
    assert token and state.retention.begin_sweep(ttl_s=1.0) is None
    waited = []
    t0 = time.monotonic()
    with state.retention.writing("cache:shop", poll_s=0.05, waiting=lambda: waited.append(1)):
        assert state.retention.writers_in_flight() == 1
    assert waited == [1] and time.monotonic() - t0 >= 0.5                   # the lease of 1 s ran out by itself
    assert state.retention.writers_in_flight() == 0


def test_idle_caches_go_and_their_chunks_with_them_a_used_one_stays(world):
    state, stores, gc, tmp_path = world
    kept_m, _ = publish(output(tmp_path, "c1", {"x": blob(30, 200_000)}), stores["us"], AVG)
    idle_m, _ = publish(output(tmp_path, "c2", {"x": blob(31, 200_000)}), stores["us"], AVG)
    state.projects.put("shop", "/src/shop", {"retention": json.dumps({"cacheUnusedDays": 1})})
    state.caches.put("shop", "dev", {"~/.cache": idle_m.manifest_digest}, "b1", idle_m.size)
    state.r.hset("gantry:cache:shop", "dev", json.dumps({**state.caches.get("shop", "dev"),
                                                         "usedAt": state.clock() - 3 * 86_400_000}))
    state.caches.put("shop", "main", {"~/.cache": kept_m.manifest_digest}, "b2", kept_m.size)
    state.caches.touch("shop", "main", state.caches.get("shop", "main"))
    report = gc.run()
    assert [c["branch"] for c in report["projects"]["shop"]["caches"]] == ["dev"]
    assert "unused for 3.0 days" in report["projects"]["shop"]["caches"][0]["reason"]
    assert state.caches.get("shop", "dev") is None and state.caches.get("shop", "main")
    assert not present(stores, idle_m)["us"] and present(stores, kept_m)["us"]


def test_nothing_is_swept_when_a_kept_manifest_cannot_be_read(world):
    state, stores, gc, _ = world
    _, m = built(world, {"a": blob(40, 100_000)})
    for s in stores.values():
        s.delete([manifest_key(m.manifest_digest)])
    stores["us"].put("chunks/blake3/00/" + "0" * 64, b"orphan")
    report = gc.run()
    assert report["sweep"].startswith("not swept: kept manifest") and stores["us"].has("chunks/blake3/00/" + "0" * 64)
