"""The Replicator's logic against real Redis and real stores, without Ray: rows, delta,
corruption, cancel, retry and give-up."""
import os
import time

import pytest
import redis

from gantry.actors.replication.replicator import Replicator, direct_fetch
from gantry.state import State, keys
from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.publish import publish
from gantry.statuses import BuildStatus
from gantry.settings import Settings

SETTINGS = Settings(replication_give_up_s=3600, replication_backoff_s=0)


@pytest.fixture
def world(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).flushdb()
    store = State(redis_url)
    primary, region = FsBlobStore(tmp_path / "primary"), FsBlobStore(tmp_path / "eu")
    return store, primary, region, tmp_path


def published_build(store, primary, out, owner="o"):
    b = store.builds.create("p", "a" * 40)["buildID"]
    assert store.builds.claim_next(owner) == b
    manifest, stats = publish(out, primary, 16 << 10)
    fields = {"artifactDigest": manifest.manifest_digest, "artifactSize": manifest.size,
              "artifactChunks": len(manifest.chunks)}
    row = {"bytesTransferred": stats.bytes_uploaded, "chunksTransferred": stats.chunks_uploaded,
           "bytesSkipped": stats.bytes_skipped, "chunksSkipped": stats.chunks_skipped}
    assert store.replication.publish(b, owner, fields, "us", ["eu"], row) is BuildStatus.DEPLOYING
    return b, manifest


def rows(store, b):
    return {r["region"]: r for r in store.replication.rows(b)}


def output(tmp_path, name, blob, extra=b""):
    out = tmp_path / name
    out.mkdir()
    (out / "blob").write_bytes(blob)
    (out / "note").write_bytes(extra)
    return out


def test_replicates_then_moves_only_changed_chunks(world):
    store, primary, region, tmp = world
    blob = os.urandom(1 << 20)
    rep = Replicator("eu", store, primary, region, direct_fetch(primary), SETTINGS)
    b1, m1 = published_build(store, primary, output(tmp, "v1", blob, b"one"))
    assert rep.tick() == [(b1, "SUCCEEDED")]
    r1 = rows(store, b1)["eu"]
    assert r1["replicationStatus"] == "REPLICATED" and int(r1["bytesTransferred"]) == m1.size
    assert all(region.has(chunk_key(c.digest)) for c in m1.chunks)

    b2, m2 = published_build(store, primary, output(tmp, "v2", blob, b"two"), owner="o2")
    assert rep.tick() == [(b2, "SUCCEEDED")]
    r2 = rows(store, b2)["eu"]
    assert int(r2["bytesTransferred"]) < 0.1 * m2.size and int(r2["chunksSkipped"]) > 0
    assert int(r2["bytesTransferred"]) + int(r2["bytesSkipped"]) == sum(c.size for c in m2.unique_chunks())
    assert store.builds.get(b2)["buildStatus"] == "SUCCEEDED"


def test_a_corrupt_primary_chunk_is_never_replicated_as_good(world):
    store, primary, region, tmp = world
    b, m = published_build(store, primary, output(tmp, "v", os.urandom(200_000)))
    victim = primary._path(chunk_key(m.chunks[2].digest))
    victim.write_bytes(victim.read_bytes()[::-1])
    rep = Replicator("eu", store, primary, region, direct_fetch(primary), SETTINGS)
    assert rep.tick() == [(b, "FAILED")]
    rec = store.builds.get(b)
    assert rec["buildStatus"] == "FAILED" and "does not match its digest" in rec["error"]
    assert "replication to eu failed" in rec["error"]
    assert not region.has(chunk_key(m.chunks[2].digest))
    assert rows(store, b)["eu"]["replicationStatus"] == "FAILED"


def test_cancel_during_deploying_stops_replication(world):
    store, primary, region, tmp = world
    b, m = published_build(store, primary, output(tmp, "v", os.urandom(600_000)))
    store.builds.transition(b, BuildStatus.CANCELLED)
    rep = Replicator("eu", store, primary, region, direct_fetch(primary), SETTINGS)
    assert rep.tick() == [(b, "DROPPED")]
    assert store.builds.get(b)["buildStatus"] == "CANCELLED" and store.replication.due("eu") == []


def test_unreachable_store_is_retried_then_given_up(world):
    store, primary, region, tmp = world
    b, m = published_build(store, primary, output(tmp, "v", os.urandom(100_000)))

    def broken(refs):
        raise ConnectionError("eu store down")
        yield  # pragma: no cover

    rep = Replicator("eu", store, primary, region, broken, SETTINGS)
    assert rep.tick() == [(b, "RETRYING")]
    assert rep.tick() == [(b, "RETRYING")]
    row = store.replication.row(b, "eu")
    assert row["replicationStatus"] == "RETRYING" and row["retries"] == "2" and "eu store down" in row["error"]
    assert store.builds.get(b)["buildStatus"] == "DEPLOYING"
    rep.settings = Settings(replication_give_up_s=0, replication_backoff_s=0)   # past the give-up window
    assert rep.tick() == [(b, "FAILED")]
    rec = store.builds.get(b)
    assert rec["buildStatus"] == "FAILED" and "gave up after 3 attempts" in rec["error"]
    assert store.replication.restart(b) == ["eu"] and store.builds.get(b)["buildStatus"] == "DEPLOYING"
    assert store.replication.restart(b) == []                 # nothing gave up any more
    rep = Replicator("eu", store, primary, region, direct_fetch(primary), SETTINGS)
    assert rep.tick() == [(b, "SUCCEEDED")]


def test_a_job_queued_for_now_wakes_its_regions_replicator(world):
    """A replicator looked for due jobs every 0.5 s: each build waited a quarter second on average
    before its replication began. A publish and a restart now say so on the region's channel."""
    store, primary, region, tmp = world
    heard, elsewhere = store.replication.subscribe("eu"), store.replication.subscribe("ap")
    for sub in (heard, elsewhere):
        assert sub.get_message(timeout=1) is None   # the subscription's confirmation, not a message
    b, _ = published_build(store, primary, output(tmp, "v", os.urandom(1 << 16)))
    store.replication.finish(b, "eu", ok=False, reason="store full")
    assert store.replication.restart(b) == ["eu"]

    def messages(sub):
        out = []
        while (m := sub.get_message(timeout=0.5)) is not None:
            out.append(m["data"])
        return out
    assert messages(heard) == [b, b] and messages(elsewhere) == []


def test_a_full_store_makes_replication_retry_with_the_stores_error_then_finish_once_there_is_room(world):
    """A real S3 server (rclone) on a real 2 MB disk (tmpfs): 4 MB of chunks do not fit. The job
    is RETRYING with the store's own error (rclone says InternalError; its log says "no space
    left on device"), keeps what landed, and finishes once the disk has room."""
    import secrets
    import subprocess
    import time
    from gantry.artifacts.blobstore import S3BlobStore
    from gantry.cluster.processes import bin_path, free_port, stop_group
    store, primary, _, tmp = world
    disk = tmp / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    (disk / "eu").mkdir()
    port, key, secret = free_port(), f"k{secrets.token_hex(6)}", secrets.token_hex(20)
    rclone = subprocess.Popen([bin_path("rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--config", "/dev/null",
                               str(disk)], env={**os.environ, "RCLONE_AUTH_KEY": f'"{key},{secret}"'},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        target = S3BlobStore(f"http://127.0.0.1:{port}", "eu", key, secret, max_attempts=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                target.reachable()
                break
            except Exception:
                assert time.monotonic() < deadline, "rclone did not start"
                time.sleep(0.1)
        b, m = published_build(store, primary, output(tmp, "big", os.urandom(4 << 20)))
        rep = Replicator("eu", store, primary, target, direct_fetch(primary), SETTINGS)
        assert rep.tick() == [(b, "RETRYING")]
        row = rows(store, b)["eu"]
        assert row["replicationStatus"] == "RETRYING" and "InternalError" in row["error"], row
        landed = int(row["chunksTransferred"])
        assert 0 < landed < len(m.unique_chunks())   # what fit stays: the retry does not send it again
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)   # room again
        assert rep.tick() == [(b, "SUCCEEDED")]
        assert int(rows(store, b)["eu"]["chunksTransferred"]) == len(m.unique_chunks())
        assert all(target.has(chunk_key(c.digest)) for c in m.unique_chunks())
    finally:
        stop_group(rclone.pid)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_region_that_joins_later_backfills_the_builds_in_use_and_only_those(world):
    store, primary, region, tmp = world
    rep = Replicator("eu", store, primary, region, direct_fetch(primary), SETTINGS)
    b1, m1 = published_build(store, primary, output(tmp, "v1", os.urandom(200_000)))
    assert rep.tick() == [(b1, "SUCCEEDED")]
    idle, _ = published_build(store, primary, output(tmp, "v2", os.urandom(200_000)), owner="o2")
    rep.tick()
    store.deployments.create("p", b1, None, {}, ["us", "eu"], "dana")
    ap = FsBlobStore(tmp / "ap")
    joined = Replicator("ap", store, primary, ap, direct_fetch(primary), SETTINGS)
    assert joined.backfill() == [b1] and joined.backfill() == []          # the desired build, once
    assert rows(store, b1)["ap"]["replicationStatus"] == "PENDING" and "ap" not in rows(store, idle)
    assert joined.tick() == [(b1, "SUCCEEDED")]                          # a SUCCEEDED build is copied too
    assert rows(store, b1)["ap"]["replicationStatus"] == "REPLICATED"
    assert all(ap.has(chunk_key(c.digest)) for c in m1.chunks) and store.builds.get(b1)["buildStatus"] == "SUCCEEDED"


def test_replication_is_a_tree_a_landed_replica_serves_the_next(world):
    """Fanout 1: while eu copies from the primary, ap waits; then ap copies from eu (not the
    primary, which also serves its hosts), and each row says where its copy came from."""
    store, primary, eu_store, tmp = world
    ap_store = FsBlobStore(tmp / "ap")
    b = store.builds.create("p", "a" * 40)["buildID"]
    assert store.builds.claim_next("o") == b
    manifest, stats = publish(output(tmp, "v", os.urandom(1 << 20)), primary, 16 << 10)
    store.replication.publish(b, "o", {"artifactDigest": manifest.manifest_digest, "artifactSize": manifest.size,
                                       "artifactChunks": len(manifest.chunks)}, "us", ["eu", "ap"],
                              {"bytesTransferred": stats.bytes_uploaded, "chunksTransferred": stats.chunks_uploaded,
                               "bytesSkipped": 0, "chunksSkipped": 0})
    read_from = []

    def sources(region):
        read_from.append(region)
        return direct_fetch({"eu": eu_store, "ap": ap_store}[region])

    def replicator(name, target):
        settings = Settings(replication_give_up_s=3600, replication_backoff_s=0, replication_fanout=1)
        return Replicator(name, store, primary, target, direct_fetch(primary), settings, "us", sources)

    eu, ap = replicator("eu", eu_store), replicator("ap", ap_store)
    assert store.replication.claim_source(b, "eu", "us", 1, 60) == "us"   # eu's copy under way (as if mid-tick)
    assert ap.tick() == [(b, "WAITING")] and ap.tick() == []                # the primary serves one copy at a time
    store.replication.release_source(b, "eu", "us")
    assert eu.tick() == [(b, "DEPLOYING")]                                   # eu copies from the primary
    store.r.zadd(keys.repl_queue("ap"), {b: 0})                              # ap's wait is over
    assert ap.tick() == [(b, "SUCCEEDED")] and read_from == ["eu"]          # from eu's replica
    assert {r: row.get("source") for r, row in rows(store, b).items()} == {"us": None, "eu": "us", "ap": "eu"}
    assert all(ap_store.has(chunk_key(c.digest)) for c in manifest.chunks)
    assert store.r.zcard(keys.repl_sources(b)) == 0                          # every claim released


def test_a_dead_replicator_s_claim_lapses(world):
    store, primary, region, tmp = world
    b, _ = published_build(store, primary, output(tmp, "v", os.urandom(1000)))
    assert store.replication.claim_source(b, "eu", "us", 1, 0.05) == "us"
    assert store.replication.claim_source(b, "xx", "us", 1, 60) is None     # held
    time.sleep(0.1)                                                          # its holder died: the lease ran out
    assert store.replication.claim_source(b, "xx", "us", 1, 60) == "us"
