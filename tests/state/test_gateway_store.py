"""The gateway's Redis pieces against a real redis-server (no Ray): rate-limit buckets, the
audit log, deployment paging, status counts, coalescing and webhook delivery idempotency."""
import time

import pytest
import redis

from gantry.state import RateLimited, State, TransitionRefused, audit, keys
from gantry.state.audit import AuditLog
from gantry.state.ratelimit import RateLimiter
from gantry.statuses import BuildStatus as S

SHA = "b" * 40


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    return client


def test_token_bucket_allows_a_burst_then_refills(r):
    limiter = RateLimiter(r)
    for _ in range(3):
        limiter.take("user:a", 2.0, 3)
    with pytest.raises(RateLimited) as e:
        limiter.take("user:a", 2.0, 3)
    assert e.value.retry_after_s == 1 and e.value.scope == "user:a"
    limiter.take("user:b", 2.0, 3)          # buckets are per scope
    time.sleep(0.55)                        # 2 tokens a second: one is back
    limiter.take("user:a", 2.0, 3)
    with pytest.raises(RateLimited):
        limiter.take("user:a", 2.0, 3)
    limiter.take("user:a", 0, 0)            # rate 0: no limit
    assert 0 < r.pttl(keys.rate("user:a")) <= 2500   # idle buckets expire


def test_a_token_is_taken_with_the_request_s_project_read_in_the_same_call(r):
    limiter = RateLimiter(r)
    r.hset(keys.project("web"), mapping={"name": "web", "repoURL": "file:///r"})
    assert limiter.take("user:c", 2.0, 1, read=keys.project("web")) == {"name": "web", "repoURL": "file:///r"}
    with pytest.raises(RateLimited):         # refused: the read is not handed out either
        limiter.take("user:c", 2.0, 1, read=keys.project("web"))
    assert limiter.take("user:c", 0, 0, read=keys.project("nope")) is None   # no bucket; a missing project
    assert limiter.take("user:c", 0, 0, read=keys.project("web"))["name"] == "web"


def test_audit_pages_newest_first_per_project_and_overall(r):
    log = AuditLog(r)
    targets = [f"{i:032x}" for i in range(7)]
    for i, t in enumerate(targets):  # many in one millisecond: the order still holds
        log.record(audit.prepare("dana", "build.create", "shop" if i % 2 else "web", t))
    shop, cursor = [], None
    while True:
        page, cursor = log.page("shop", 2, cursor)
        shop += page
        if not cursor:
            break
    assert [e["target"] for e in shop] == [targets[5], targets[3], targets[1]]
    everything, _ = log.page(None, 100, None)
    assert [e["target"] for e in everything] == targets[::-1]
    assert everything[0]["user"] == "dana" and everything[0]["detail"] == {}
    with pytest.raises(ValueError):
        audit.prepare("dana", "build.delete", "shop")


def test_an_audit_entry_is_written_exactly_when_its_change_is(redis_url, r):
    store = deploys = State(redis_url)
    log = store.audit
    b = store.builds.create("shop", SHA, audit=lambda i: audit.prepare("dana", "build.create", "shop", i))["buildID"]
    store.builds.transition(b, S.CANCELLED, audit=audit.prepare("dana", "build.cancel", "shop", b))
    with pytest.raises(TransitionRefused):  # refused: no entry
        store.builds.transition(b, S.CANCELLED, audit=audit.prepare("eve", "build.cancel", "shop", b))
    dep = deploys.deployments.create("shop", b, None, {}, ["us"], "dana",
                         audit=lambda d: audit.prepare("dana", "deployment.create", "shop", d))["deploymentID"]
    assert deploys.deployments.set_status(dep, "PAUSED", audit=audit.prepare("dana", "deployment.pause", "shop", dep))
    assert deploys.deployments.set_status(dep, "PAUSED", audit=audit.prepare("eve", "deployment.pause", "shop", dep)) is None
    store.projects.put("shop", "/src/shop", audit=audit.prepare("dana", "project.register", "shop"))
    entries, _ = log.page("shop", 100, None)
    assert [(e["user"], e["action"], e["target"]) for e in reversed(entries)] == [
        ("dana", "build.create", b), ("dana", "build.cancel", b), ("dana", "deployment.create", dep),
        ("dana", "deployment.pause", dep), ("dana", "project.register", None)]


def test_deployment_pages_break_ties_on_the_same_millisecond(redis_url, r):
    clock = {"t": 1_764_000_000_000}
    deploys = State(redis_url, clock=lambda: clock["t"])
    made = []
    for i in range(7):
        clock["t"] += 1 if i % 3 == 0 else 0    # several deployments share a millisecond
        made.append(deploys.deployments.create("shop", f"{i:032x}", None, {}, ["us"], "dana")["deploymentID"])
    newest_first = sorted(made, key=lambda d: (int(deploys.deployments.get(d)["createdAt"]), d), reverse=True)
    for size in (1, 2, 3, 10):
        seen, cursor = [], None
        while True:
            page, cursor = deploys.deployments.page("shop", size, cursor)
            seen += [d["deploymentID"] for d in page]
            if not cursor:
                break
        assert seen == newest_first, size


def test_status_counts_follow_every_transition(redis_url, r):
    store = State(redis_url)
    a = store.builds.create("shop", SHA)["buildID"]
    b = store.builds.create("shop", SHA)["buildID"]
    assert store.builds.status_counts()["QUEUED"] == 2
    assert store.builds.claim_next("owner-1") == a
    store.builds.transition(b, S.CANCELLED)
    counts = store.builds.status_counts()
    assert (counts["QUEUED"], counts["BUILDING"], counts["CANCELLED"]) == (0, 1, 1)
    store.replication.publish(a, "owner-1", {"artifactDigest": "d"}, "us", ["eu"], {
        "bytesTransferred": 0, "chunksTransferred": 0, "bytesSkipped": 0, "chunksSkipped": 0})
    assert store.builds.status_counts()["DEPLOYING"] == 1
    store.replication.finish(a, "eu", ok=True)
    counts = store.builds.status_counts()
    assert (counts["BUILDING"], counts["DEPLOYING"], counts["SUCCEEDED"]) == (0, 0, 1)
    store.archive.forget("shop", [(store.builds.get(a), store.replication.rows(a))], "archive/x.parquet")
    assert store.builds.status_counts()["SUCCEEDED"] == 0 and store.archive.file_of("shop", a) == "archive/x.parquet"


def test_coalescing_cancels_only_older_queued_builds_of_the_branch(redis_url, r):
    store = State(redis_url)
    old_main = store.builds.create("shop", SHA, {"branch": "main"})
    api_build = store.builds.create("shop", SHA, {})
    old_other = store.builds.create("shop", SHA, {"branch": "dev"})
    running = store.builds.create("shop", SHA, {"branch": "main"})
    store.builds.transition(running["buildID"], S.BUILDING)
    newer = store.builds.create("shop", SHA, {"branch": "main"})
    assert store.builds.supersede_queued("shop", newer, "main") == [old_main["buildID"]]
    rec = store.builds.get(old_main["buildID"])
    assert rec["buildStatus"] == "CANCELLED" and rec["supersededBy"] == newer["buildID"]
    for other in (api_build, old_other, newer):
        assert store.builds.get(other["buildID"])["buildStatus"] == "QUEUED"
    assert store.builds.get(running["buildID"])["buildStatus"] == "BUILDING"


def test_a_delivery_creates_one_build_even_after_a_crash_between_its_steps(redis_url, r):
    store = State(redis_url)
    make = lambda build_id: store.builds.create("shop", SHA, {}, build_id=build_id)  # noqa: E731
    first, created = store.builds.for_delivery("shop", "d-1", make)
    again, created_again = store.builds.for_delivery("shop", "d-1", make)
    assert created and not created_again and again["buildID"] == first["buildID"]

    def crash(build_id):
        raise SystemExit("the API process died after claiming the delivery")
    with pytest.raises(SystemExit):
        store.builds.for_delivery("shop", "d-2", crash)
    redelivered, created = store.builds.for_delivery("shop", "d-2", make)
    assert created and store.builds.get(redelivered["buildID"])["buildStatus"] == "QUEUED"
    assert store.builds.for_delivery("shop", "d-2", make)[0]["buildID"] == redelivered["buildID"]
    assert len(r.zrange(keys.builds("shop"), 0, -1)) == 2


def test_archiver_moves_finished_unpinned_builds_in_bounded_batches(redis_url, r, tmp_path):
    from gantry.archive.files import Archiver, ArchiveReader, list_page
    from gantry.artifacts.blobstore import FsBlobStore
    clock = {"t": 1_767_225_600_000}          # 2026-01-01; each build a day later
    store = State(redis_url, clock=lambda: clock["t"])
    deploys = store
    store.projects.put("shop", "/src/shop")
    ids = []
    for i in range(9):
        clock["t"] += 86_400_000
        ids.append(store.builds.create("shop", SHA)["buildID"])
        store.logs.append(ids[-1], f"log of build {i}\n" * 50, 1 << 20)
        if i != 4:                              # build 4 stays QUEUED: never archived
            store.builds.transition(ids[-1], S.CANCELLED)
    deploys.deployments.create("shop", ids[2], None, {}, ["us"], "dana")   # build 2 is desired: pinned
    before, _ = list_page(store, ArchiveReader(FsBlobStore(tmp_path)), "shop", 100, None)
    blobs = FsBlobStore(tmp_path)
    moved = Archiver(store, blobs).run(cutoff_ms=clock["t"], batch=2, max_file_bytes=2000)
    assert moved == {"shop": 6}                 # 9 - the queued one - the pinned one - the newest (at the cutoff)
    assert {store.builds.get(i) is None for i in (ids[2], ids[4], ids[8])} == {False}
    files = blobs.list("archive/builds/project=shop/")
    assert len(files) >= 3 and all("/month=2026-01/" in f for f in files)   # several bounded files
    reader = ArchiveReader(blobs)
    for size in (1, 4, 100):
        seen, cursor = [], None
        while True:
            page, cursor = list_page(store, reader, "shop", size, cursor)
            seen += page
            if not cursor:
                break
        assert seen == before, size
    key = store.archive.file_of("shop", ids[0])
    assert reader.get(key, ids[0])[2] == b"log of build 0\n" * 50
    assert Archiver(store, blobs).run(cutoff_ms=clock["t"], batch=2) == {}


def test_host_state_is_kept_per_host_and_project(redis_url, r):
    clock = {"t": 1_000}
    state = State(redis_url, clock=lambda: clock["t"])
    state.hosts.set_target("us-a", "h1", "web", "b1")
    state.hosts.set_stage("us-a", "h1", "shop", "s2")
    targets = state.hosts.report("h1", "us", "us-a", {"address": "10.0.0.1:7"},
                                 {"web": {"state": "downloading", "about": "b1"}, "shop": {"state": "idle"}})
    assert targets == {"web": ("b1", ""), "shop": ("", "s2")}
    state.hosts.report("h2", "us", "us-a", {"address": "10.0.0.2:7"}, {}, serving=["shop"])
    web = {h["hostID"]: h for h in state.hosts.for_project("us-a", "web")}
    shop = {h["hostID"]: h for h in state.hosts.for_project("us-a", "shop")}
    assert set(web) == {"h1"} and set(shop) == {"h1", "h2"}          # h2 serves shop only
    assert web["h1"]["state"] == "downloading" and web["h1"]["sentTargetBuildID"] == "b1"
    assert shop["h1"]["state"] == "idle" and shop["h2"]["state"] == "idle" and not shop["h1"].get("targetBuildID")
    state.hosts.mark_lost("us-a", "h1")
    assert state.hosts.for_project("us-a", "web")[0]["state"] == "lost"   # liveness is the host's
    state.hosts.report("h1", "us", "us-a", {"address": "10.0.0.1:7"}, {"web": {"state": "active", "about": "b1"}})
    assert state.hosts.for_project("us-a", "web")[0]["state"] == "active"   # back
    assert state.hosts.targets("us-a", "h1") == {"web": "b1"}
