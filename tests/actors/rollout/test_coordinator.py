"""Coordinators of two datacenters in two regions against real Redis, with simulated hosts that
heartbeat and obey their targets (the real daemon is tested elsewhere)."""

import pytest
import redis

from gantry.actors.rollout.coordinator import Coordinator
from gantry.artifacts import bitfield
from gantry.node_daemon.slot import report_about
from gantry.state import State, keys
from gantry.statuses import DeploymentStatus

REGIONS = {"us-east": ["us-east-a"], "eu-west": ["eu-west-a"]}
# artifacts announced in these tests, with their unique chunk counts, and the builds they belong to
M, OLD, NEW = ("blake3:" + c * 64 for c in "mab")
ARTIFACTS = {M: 3, OLD: 2, NEW: 2}
BUILDS = {"bm": M, "bold": OLD, "bnew": NEW}
FAST = {"steps": [1, 0.5, 1.0], "minHealthy": 0.9, "bakeS": 0}


class Clock:
    t = 1_000_000.0

    def __call__(self):
        return self.t


class Host:
    """A host serving project "web" that obeys its target and stages what it is told to,
    failing to run the builds in `fail_on` and to stage those in `fail_stage`."""

    def __init__(self, coord, host_id, fail_on=(), project="web", serving=None, fail_stage=()):
        self.coord, self.id, self.fail_on, self.project, self.serving = coord, host_id, set(fail_on), project, serving
        self.fail_stage = set(fail_stage)
        self.active, self.state, self.error, self.failed, self.staged = None, "idle", "", None, None
        self.log = []   # (clock, "staged" | "active", build)

    def beat(self):
        about = report_about(self.state, self.active, self.staged, self.failed)
        reply = self.coord.heartbeat(self.id, f"{self.id}:7000", {self.project: {
            "state": self.state, "activeBuildID": self.active, "error": self.error, "about": about}},
            serving=self.serving)
        info = reply["projects"].get(self.project) or {}
        target, stage = info.get("targetBuildID"), (info.get("stage") or {}).get("buildID")
        if target and target != self.active and target != self.failed:
            if target in self.fail_on:
                self.state, self.error, self.failed = "failed", "health check failed", target
            else:
                self.active, self.state, self.error = target, "active", ""
                self.log.append((self.coord.clock(), "active", target))
        elif target and target == self.active and not (self.state == "failed" and self.failed == stage):
            if self.state != "staged" or self.staged != stage:
                self.state, self.error = "active", ""
        if self.state != "downloading" and stage and stage not in (self.active, self.failed, self.staged):
            if stage in self.fail_stage:
                self.state, self.error, self.failed = "failed", "disk full", stage
            else:
                self.state, self.staged = "staged", stage
                self.log.append((self.coord.clock(), "staged", stage))
        return target


def replica(r, build_id, region, status="REPLICATED", build_status="SUCCEEDED"):
    """A build whose replica in `region` is in `status` (as the replicators leave it)."""
    r.hset(keys.build(build_id), mapping={"buildID": build_id, "buildStatus": build_status})
    r.sadd(keys.repl_regions(build_id), region)
    r.hset(keys.repl_row(build_id, region), mapping={"region": region, "replicationStatus": status})


@pytest.fixture
def world(redis_url):
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    for build_id in ("b1", "b2", "s1", *BUILDS):
        for region in REGIONS:
            replica(r, build_id, region)
    for build_id, artifact in BUILDS.items():
        r.hset(keys.build(build_id), "artifactDigest", artifact)
    clock = Clock()
    store = State(redis_url, clock=lambda: int(clock() * 1000))
    coords = {r: Coordinator(dcs[0], r, REGIONS, store, lost_after_s=30, clock=clock,
                             manifest_chunks=lambda a: {f"blake3:{i:064x}" for i in range(ARTIFACTS.get(a, 0))})
              for r, dcs in REGIONS.items()}
    return store, coords, clock


def fleet(coords, n=4, fail_on=None):
    return {r: [Host(c, f"{r}-{i}", (fail_on or {}).get(r, ())) for i in range(n)] for r, c in coords.items()}


def run(coords, hosts, clock, rounds=40):
    for _ in range(rounds):
        for hs in hosts.values():
            for h in hs:
                h.beat()
        for c in coords.values():
            c.tick()
        clock.t += 1


def test_regions_go_one_after_another_and_the_deployment_completes(world):
    store, coords, clock = world
    hosts = fleet(coords)
    run(coords, hosts, clock, rounds=2)
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    for hs in hosts.values():
        for h in hs:
            h.beat()
    coords["eu-west"].tick()
    coords["us-east"].tick()
    assert all(h.beat() is None for h in hosts["eu-west"])   # not its turn yet
    assert sum(h.beat() == "b1" for h in hosts["us-east"]) == 1  # the canary
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)
    assert store.deployments.dc_current("web") == {"us-east-a": "b1", "eu-west-a": "b1"}


def test_failing_health_rolls_every_datacenter_back(world):
    store, coords, clock = world
    hosts = fleet(coords)
    store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock)
    for hs in hosts.values():     # b2 fails its health check in the second region
        for h in hs:
            h.fail_on = {"b2"} if h.id.startswith("eu-west") else set()
    dep = store.deployments.create("web", "b2", store.deployments.last_completed_build("web"), FAST, list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=60)
    d = store.deployments.get(dep["deploymentID"])
    assert d["status"] == "ROLLED_BACK" and "eu-west-a" in d["reason"] and "failed" in d["reason"]
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)   # us-east came back too
    assert store.deployments.dc_current("web") == {"us-east-a": "b1", "eu-west-a": "b1"}


def test_a_new_deployment_supersedes_the_one_in_flight(world):
    store, coords, clock = world
    hosts = fleet(coords)
    first = store.deployments.create("web", "b1", None, dict(FAST, bakeS=1000), list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=3)
    second = store.deployments.create("web", "b2", None, FAST, list(REGIONS), "bob")
    assert store.deployments.get(first["deploymentID"])["status"] == "SUPERSEDED"
    assert "superseded by" in store.deployments.get(first["deploymentID"])["reason"]
    run(coords, hosts, clock)
    assert store.deployments.get(second["deploymentID"])["status"] == "COMPLETED"
    assert all(h.active == "b2" for hs in hosts.values() for h in hs)
    assert int(store.deployments.desired("web")["version"]) == 2


def test_pause_holds_resume_finishes(world):
    store, coords, clock = world
    hosts = fleet(coords)
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=2)
    assert store.deployments.set_status(dep["deploymentID"], "PAUSED") == "IN_PROGRESS"
    moved = sum(h.active == "b1" for hs in hosts.values() for h in hs)
    run(coords, hosts, clock, rounds=20)
    assert sum(h.active == "b1" for hs in hosts.values() for h in hs) == moved < 8
    store.deployments.set_status(dep["deploymentID"], "IN_PROGRESS")
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"


def test_silent_hosts_are_marked_lost_and_a_restarted_coordinator_resumes(world, redis_url):
    store, coords, clock = world
    hosts = fleet(coords)
    dep = store.deployments.create("web", "b1", None, dict(FAST, steps=[1, 1.0]), list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=3)
    # the us-east coordinator restarts: a new object with nothing in memory
    coords["us-east"] = Coordinator("us-east-a", "us-east", REGIONS, store,
                                    lost_after_s=30, clock=clock)
    for h in hosts["us-east"]:
        h.coord = coords["us-east"]
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    silent = hosts["eu-west"].pop()
    run(coords, hosts, clock, rounds=35)
    assert {h["hostID"]: h.get("state") for h in store.hosts.in_dc("eu-west-a")}[silent.id] == "lost"


def bits(*indexes):
    return bitfield.encode(bitfield.of(indexes))


def aim(coord, build, *hosts, stage=False):
    for h in hosts:
        coord._set(h, "web", **{("stage" if stage else "target"): build})


def test_peers_come_from_the_tracker_and_announces_are_bitfields_then_deltas(world):
    store, coords, clock = world
    c, m = coords["us-east"], M
    aim(c, "bm", "a", "b", "z", "n")
    c.heartbeat("a", "10.0.0.1:7000", {}, [{"artifact": m, "chunks": 3, "bits": bits(0), "complete": False}])
    c.heartbeat("b", "10.0.0.2:7000", {}, [{"artifact": m, "chunks": 3, "bits": bits(0, 1), "complete": False}])
    got = c.peers("z", "10.0.0.9:7000", m, 3, wanted=bits(0, 1, 2), have=bits())
    assert {p["address"]: bitfield.decode(p["bits"]) for p in got["peers"]} == {
        "10.0.0.1:7000": bitfield.of([0]), "10.0.0.2:7000": bitfield.of([0, 1])}
    assert bitfield.decode(got["origin"]) == bitfield.of([2])   # nobody has chunk 2: z fetches it
    reply = c.heartbeat("a", "10.0.0.1:7000", {}, [{"artifact": m, "chunks": 3, "add": bits(2), "complete": False}])
    assert reply["resend"] == []
    assert [p["address"] for p in c.peers("b", "10.0.0.2:7000", m, 3, bits(2), bits(0, 1))["peers"]] == ["10.0.0.1:7000"]
    # a delta for a bitfield the coordinator never took (it restarted, say): send the whole one
    assert c.heartbeat("n", "10.0.0.3:7000", {}, [{"artifact": m, "chunks": 3, "add": bits(1)}])["resend"] == [m]
    with pytest.raises(ValueError):   # a chunk beyond the artifact
        c.heartbeat("a", "10.0.0.1:7000", {}, [{"artifact": m, "chunks": 3, "bits": bits(7)}])


def test_steady_reports_do_not_write_to_redis_and_the_interval_follows_the_work(world, redis_url):
    store, coords, clock = world
    r = redis.Redis.from_url(redis_url)
    c, host = coords["us-east"], Host(coords["us-east"], "quiet")
    host.beat()
    reply = c.heartbeat("quiet", "quiet:7000", {"web": {"state": "idle"}})
    assert reply["reportInS"] >= 10                                  # idle: rarely
    before = r.info("commandstats")
    writes = lambda stats: sum(v["calls"] for k, v in stats.items() if k.split("_", 1)[1] in
                               ("evalsha", "eval", "hset", "sadd", "hdel", "set", "hsetnx"))
    for _ in range(20):
        clock.t += 1
        host.beat()
    assert writes(r.info("commandstats")) - writes(before) == 0   # nothing new: memory only
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    c.tick()
    assert c.heartbeat("quiet", "quiet:7000", {"web": {"state": "idle"}})["reportInS"] <= 1   # moving: often
    host.beat()
    assert store.hosts.for_project("us-east-a", "web")[0]["sentTargetBuildID"] == "b1"   # a transition is written
    clock.t += 40   # past the refresh: liveness reaches Redis now and then
    host.beat()
    assert int(store.hosts.get("us-east-a", "quiet")["updatedAt"]) == int(clock.t * 1000)
    assert dep


def test_a_region_waits_for_its_replica_and_the_others_go_on(world, redis_url):
    store, coords, clock = world
    r = redis.Redis.from_url(redis_url)
    replica(r, "b3", "us-east", build_status="DEPLOYING")
    replica(r, "b3", "eu-west", "RETRYING", build_status="DEPLOYING")
    dep = store.deployments.create("web", "b3", None, FAST, ["eu-west", "us-east"], "alice")   # eu-west first
    hosts = fleet(coords)
    run(coords, hosts, clock)
    assert store.deployments.dc_outcomes(dep["deploymentID"]) == {"us-east-a": "DONE"}   # not held up by eu-west
    assert store.deployments.get(dep["deploymentID"])["status"] == "IN_PROGRESS"
    assert all(h.active is None for h in hosts["eu-west"])
    replica(r, "b3", "eu-west", build_status="SUCCEEDED")                      # the replica lands
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    assert all(h.active == "b3" for hs in hosts.values() for h in hs)


def test_a_build_that_fails_replication_rolls_its_deployment_back(world, redis_url):
    store, coords, clock = world
    r = redis.Redis.from_url(redis_url)
    replica(r, "b4", "us-east", build_status="DEPLOYING")
    replica(r, "b4", "eu-west", "RETRYING", build_status="DEPLOYING")
    hosts = fleet(coords)
    store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock)
    dep = store.deployments.create("web", "b4", "b1", FAST, list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=8)
    assert any(h.active == "b4" for h in hosts["us-east"])                  # us-east had moved
    replica(r, "b4", "eu-west", "FAILED", build_status="FAILED")
    run(coords, hosts, clock)
    d = store.deployments.get(dep["deploymentID"])
    assert d["status"] == "ROLLED_BACK" and "b4 is FAILED" in d["reason"], d
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)   # a failed build runs nowhere


def test_the_tracker_forgets_an_artifact_its_hosts_moved_on_from(world):
    _, coords, clock = world
    coord, old, new = coords["us-east"], OLD, NEW
    aim(coord, "bold", "h1")
    coord.heartbeat("h1", "h1:7000", {}, [{"artifact": old, "chunks": 2, "bits": bits(0, 1), "complete": True}])
    aim(coord, "bnew", "h1")
    for _ in range(40):   # h1 keeps reporting, now about the new artifact
        coord.heartbeat("h1", "h1:7000", {}, [{"artifact": new, "chunks": 2, "bits": bits(0, 1), "complete": True}])
        coord.tick()
        clock.t += 1
    assert set(coord.tracker.swarms) == {new}


def test_two_projects_roll_out_on_the_same_hosts_at_once_each_to_its_own_build(world):
    store, coords, clock = world
    web, shop = fleet(coords, n=3), {r: [Host(c, f"{r}-{i}", project="shop") for i in range(3)]
                                     for r, c in coords.items()}
    both = {r: web[r] + shop[r] for r in coords}   # the same three machines in each region, serving both
    a = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    b = store.deployments.create("shop", "s1", None, FAST, list(REGIONS), "bob")
    run(coords, both, clock)
    assert store.deployments.get(a["deploymentID"])["status"] == "COMPLETED"
    assert store.deployments.get(b["deploymentID"])["status"] == "COMPLETED"   # neither superseded the other
    assert all(h.active == "b1" for hs in web.values() for h in hs)
    assert all(h.active == "s1" for hs in shop.values() for h in hs)
    assert store.hosts.targets("us-east-a", "us-east-0") == {"web": "b1", "shop": "s1"}


def test_a_host_serves_only_its_projects(world):
    store, coords, clock = world
    only_shop = Host(coords["us-east"], "us-east-x", project="shop", serving=["shop"])
    hosts = fleet(coords, n=2)
    store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, {**hosts, "x": [only_shop]}, clock)
    assert "us-east-x" not in {h["hostID"] for h in store.hosts.for_project("us-east-a", "web")}
    assert store.hosts.targets("us-east-a", "us-east-x") == {}
    assert [h["hostID"] for h in store.hosts.for_project("us-east-a", "shop")] == ["us-east-0", "us-east-1", "us-east-x"]


def test_a_host_that_joins_after_completion_converges_to_the_current_build(world):
    store, coords, clock = world
    hosts = fleet(coords, n=2)
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    late = Host(coords["eu-west"], "eu-west-late")
    run(coords, {**hosts, "late": [late]}, clock, rounds=4)   # a few heartbeats
    assert late.active == "b1" and late.state == "active"
    back = store.deployments.create("web", "b2", "b1", dict(FAST, steps=[1.0]), list(REGIONS), "alice")
    run(coords, {**hosts, "late": [late]}, clock)
    assert store.deployments.get(back["deploymentID"])["status"] == "COMPLETED" and late.active == "b2"



def test_a_region_that_joins_during_a_deployment_holds_nothing_open(world):
    """A stack restarted with a third region mid-deployment: the deployment finished on every
    host of its two regions, yet stayed IN_PROGRESS for good, counting the new region's hosts."""
    store, coords, clock = world
    hosts = fleet(coords, n=2)
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")["deploymentID"]
    run(coords, hosts, clock, rounds=3)
    assert store.deployments.get(dep)["status"] == "IN_PROGRESS"
    grown = {**REGIONS, "ap-south": ["ap-south-a"]}   # every coordinator now knows three regions
    coords = {r: Coordinator(dcs[0], r, grown, store, lost_after_s=30, clock=clock,
                             manifest_chunks=lambda a: set()) for r, dcs in grown.items()}
    for r, hs in hosts.items():
        for h in hs:
            h.coord = coords[r]
    hosts["ap-south"] = [Host(coords["ap-south"], f"ap-south-{i}") for i in range(2)]
    run(coords, hosts, clock)
    assert store.deployments.get(dep)["status"] == "COMPLETED"
    assert all(h.active == "b1" for r in REGIONS for h in hosts[r])
    # the new region's hosts wait for its replica (a backfill job), then converge like late hosts
    assert not any(h.active for h in hosts["ap-south"])
    replica(store.r, "b1", "ap-south")
    run(coords, hosts, clock, rounds=6)
    assert all(h.active == "b1" for h in hosts["ap-south"])
    assert store.deployments.dc_current("web")["ap-south-a"] == "b1"


STAGED = dict(FAST, stage="all")


def test_stage_all_stages_every_host_of_every_region_before_the_first_wave_activates(world):
    store, coords, clock = world
    hosts = fleet(coords)
    dep = store.deployments.create("web", "b1", None, dict(STAGED, regionWaves=[["us-east"], ["eu-west"]]),
                                   list(REGIONS), "alice")
    run(coords, hosts, clock)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    every = [h for hs in hosts.values() for h in hs]
    staged = [t for h in every for t, what, b in h.log if what == "staged" and b == "b1"]
    active = [t for h in every for t, what, b in h.log if what == "active" and b == "b1"]
    assert len(staged) == len(every) == len(active) and max(staged) < min(active)
    assert set(store.deployments.staged_dcs(dep["deploymentID"])) == {"us-east-a", "eu-west-a"}


def test_a_host_that_fails_to_stage_counts_against_its_wave(world):
    store, coords, clock = world
    hosts = fleet(coords)
    store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock)
    for h in hosts["eu-west"][:2]:   # two of four cannot stage b2: the 90% gate of eu-west's last wave fails
        h.fail_stage = {"b2"}
    dep = store.deployments.create("web", "b2", "b1", dict(STAGED, steps=[1.0]), list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=60)
    d = store.deployments.get(dep["deploymentID"])
    assert d["status"] == "ROLLED_BACK" and "eu-west-a" in d["reason"] and "2 of 4 hosts failed" in d["reason"], d
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)


def test_region_waves_activate_regions_together(world):
    store, coords, clock = world
    hosts = fleet(coords)   # a bake that never ends: a region after another would never start
    store.deployments.create("web", "b1", None, dict(STAGED, steps=[1.0], bakeS=1000, regionWaves=[list(REGIONS)]),
                             list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=10)
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)   # both regions at once
    hosts = fleet(coords)   # one region after the other instead
    store.deployments.create("web", "b2", None, dict(STAGED, steps=[1.0], bakeS=1000,
                                                     regionWaves=[["us-east"], ["eu-west"]]), list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=10)
    assert all(h.active == "b2" for h in hosts["us-east"]) and all(h.active != "b2" for h in hosts["eu-west"])
    assert all(h.staged == "b2" for h in hosts["eu-west"])    # but it staged already


def test_prestage_stages_a_build_as_soon_as_it_succeeds(world, redis_url):
    store, coords, clock = world
    r = redis.Redis.from_url(redis_url)
    hosts = fleet(coords, n=2)
    store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")
    run(coords, hosts, clock)
    store.projects.put("web", "/repo", {"prestage": "1"})
    new = store.builds.create("web", "c" * 40)
    run(coords, hosts, clock, rounds=3)
    assert all(h.staged is None for hs in hosts.values() for h in hs)   # not before it succeeds
    for region in REGIONS:
        replica(r, new["buildID"], region)
    r.hset(keys.build(new["buildID"]), "buildStatus", "SUCCEEDED")
    run(coords, hosts, clock, rounds=3)
    assert all(h.staged == new["buildID"] and h.active == "b1" for hs in hosts.values() for h in hs)
    dep = store.deployments.create("web", new["buildID"], "b1", dict(STAGED, steps=[1.0]), list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=8)
    assert store.deployments.get(dep["deploymentID"])["status"] == "COMPLETED"
    assert all(h.active == new["buildID"] and [w for _, w, b in h.log if b == new["buildID"]] == ["staged", "active"]
               for hs in hosts.values() for h in hs)   # staged once, then only activated


def test_a_host_whose_report_changes_and_every_status_or_outcome_change_wake_the_coordinators(world):
    """The loop stepped only every 0.5 s: each wave, bake and region waited a tick or two for news
    already in hand. Now a changed report and each change another coordinator could act on wake it."""
    store, coords, clock = world
    woken = []
    coords["us-east"].on_news = lambda: woken.append("report")
    h = Host(coords["us-east"], "us-east-0")
    h.beat()
    assert woken == ["report"]   # a new host
    h.beat()
    clock.t += 40
    h.beat()
    assert woken == ["report"]   # the same report again, written or not, is no news
    h.state = "failed"
    h.beat()
    assert woken == ["report", "report"]
    heard = store.deployments.subscribe()
    heard.get_message(timeout=1)   # the subscription's confirmation
    dep = store.deployments.create("web", "b1", None, FAST, list(REGIONS), "alice")["deploymentID"]
    store.deployments.mark_staged(dep, "us-east-a")
    store.deployments.mark_staged(dep, "us-east-a")   # once
    store.deployments.mark_dc(dep, "us-east-a", "DONE")
    store.deployments.set_status(dep, DeploymentStatus.PAUSED)
    store.deployments.set_status(dep, DeploymentStatus.PAUSED)   # not a change: no news
    messages = []
    while (m := heard.get_message(timeout=0.5)) is not None:
        messages.append(m["data"] if isinstance(m["data"], str) else m["data"].decode())
    assert messages == ["web", dep, dep, dep]


def test_a_hosts_activation_is_stored_only_as_far_as_it_is_well_formed(world):
    store, coords, clock = world
    coord = coords["us-east"]
    for i, said in enumerate([{"project": "web", "buildID": "b1", "seconds": 2.5, "junk": "x" * 100_000},
                              {"project": "web", "buildID": "b1", "seconds": "soon"}, {"seconds": 1}, [1, 2]]):
        coord.heartbeat(f"h{i}", f"h{i}:7000", {}, activation=said)
    held = {h["hostID"]: h.get("lastActivation") for h in store.hosts.in_dc("us-east-a")}
    assert held == {"h0": '{"project": "web", "buildID": "b1", "seconds": 2.5}', "h1": None, "h2": None, "h3": None}
