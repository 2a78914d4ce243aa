"""Issue 22, points 3, 4, 7 and 9: a compromised host against its datacenter's coordinator. Real
Redis, the real coordinator and its real HTTP endpoint (no Ray: the coordinator is a plain class).
"""
import threading

import httpx
import pytest
import redis

from gantry import auth
from gantry.actors.rollout.coordinator import Coordinator
from gantry.actors.rollout.host_gateway import HostGateway
from gantry.artifacts import bitfield
from gantry.node_daemon.slot import report_about
from gantry.state import State, keys
from helpers import BusyPeer, wait_until

DC, REGION = "us-east-a", "us-east"
M, OTHER = "blake3:" + "a" * 64, "blake3:" + "b" * 64
CHUNKS = {M: 8, OTHER: 4}
SECRET = "s" * 32


class Clock:
    t = 1_000_000.0

    def __call__(self):
        return self.t


@pytest.fixture
def world(redis_url):
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    for build_id, artifact in (("b1", M), ("b2", OTHER), ("b0", OTHER)):
        r.hset(keys.build(build_id), mapping={"buildID": build_id, "buildStatus": "SUCCEEDED",
                                              "artifactDigest": artifact, "artifactSize": 8 << 20})
        r.sadd(keys.repl_regions(build_id), REGION)
        r.hset(keys.repl_row(build_id, REGION), mapping={"region": REGION, "replicationStatus": "REPLICATED"})
    clock = Clock()
    store = State(redis_url, clock=lambda: int(clock() * 1000))
    coord = Coordinator(DC, REGION, {REGION: [DC]}, store, lost_after_s=30, clock=clock, stage_timeout_s=60,
                        manifest_chunks=lambda a: {f"blake3:{a[7]}{i:063x}" for i in range(CHUNKS.get(a, 0))},
                        repair=lambda digest: True)
    return store, coord, clock


def every(n):
    return bitfield.encode(bitfield.full(n))


def test_announces_count_only_for_the_hosts_own_targets_with_the_manifests_chunk_count(world):
    """A host announced any artifact, any bit count, complete: the tracker took it as a seed
    and stopped handing those chunks to the origin."""
    store, coord, clock = world
    coord._set("honest", "web", target="b1")
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [{"artifact": M, "chunks": 8, "bits": every(8), "complete": True}])
    coord._set("liar", "web", target="b2")   # its own target is another build: still not M
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [{"artifact": M, "chunks": 8, "bits": every(8), "complete": True}])
    coord._set("liar2", "web", target="b1")   # M is its target, but it claims another chunk count
    coord.heartbeat("liar2", "10.0.0.67:7000", {}, [{"artifact": M, "chunks": 3, "bits": every(3), "complete": True}])
    got = coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0))
    assert got["peers"] == [] and bitfield.decode(got["origin"]), got   # the origin serves it
    assert coord.peers("honest", "10.0.0.1:7000", M, 3, every(3), bitfield.encode(0)) is None   # wrong count
    assert coord.peers("honest", "10.0.0.1:7000", OTHER, 4, every(4), bitfield.encode(0)) is None   # not its target


def test_a_peer_that_does_not_serve_what_it_claims_loses_its_claims(world):
    store, coord, clock = world
    for h in ("honest", "liar"):
        coord._set(h, "web", target="b1")
    liar = {"artifact": M, "chunks": 8, "bits": every(8), "complete": True}
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [liar])
    got = coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0))
    assert [p["address"] for p in got["peers"]] == ["10.0.0.66:7000"] and not bitfield.decode(got["origin"])
    # the honest host's downloader met only 503s from it: it says so with its next query
    got = coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0), failed=["10.0.0.66:7000"])
    assert got["peers"] == [] and bitfield.decode(got["origin"]), got
    assert "reported by honest" in store.hosts.get(DC, "liar")["distrusted"]
    clock.t += 30
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [liar])   # it says it again: not heard for a while
    assert coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0))["peers"] == []
    clock.t += 31
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [liar])   # heard again after distrust_s...
    coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0), failed=["10.0.0.66:7000"])
    clock.t += 61
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [liar])   # ...and, the second time, not for twice as long
    assert coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0))["peers"] == []


def test_a_peer_that_answers_only_busy_holds_no_chunk_back_from_the_origin(world):
    """A peer that answers 503 to everything kept its chunks from the origin forever. Reported
    as busy (an honest peer under load can look the same), it is still offered, after the
    others, but its bits hold nothing back."""
    store, coord, clock = world
    for h in ("honest", "other", "liar"):
        coord._set(h, "web", target="b1")
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [{"artifact": M, "chunks": 8, "bits": every(8), "complete": True}])
    coord.heartbeat("other", "10.0.0.2:7000", {}, [{"artifact": M, "chunks": 8, "bits": bitfield.encode(1),
                                                     "complete": False}])
    got = coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0), busy=["10.0.0.66:7000"])
    assert [p["address"] for p in got["peers"]] == ["10.0.0.2:7000", "10.0.0.66:7000"], got   # the doubted one last
    assert bitfield.decode(got["origin"]) and not bitfield.decode(got["origin"]) & 1   # chunk 0 is other's
    assert "served nothing but 503" in store.hosts.get(DC, "liar")["distrusted"]
    # a peer someone got a verified chunk from is busy because it serves: a busy report is not believed
    coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0), served=["10.0.0.2:7000"])
    coord.peers("honest", "10.0.0.1:7000", M, 8, every(8), bitfield.encode(0), busy=["10.0.0.2:7000"])
    assert "distrusted" not in store.hosts.get(DC, "other")
    clock.t += 61
    coord.heartbeat("liar", "10.0.0.66:7000", {}, [{"artifact": M, "chunks": 8, "bits": every(8), "complete": True}])
    coord.tick()   # the doubt expires: its bits count again
    got = coord.peers("other", "10.0.0.2:7000", M, 8, every(8) , bitfield.encode(1))
    assert not bitfield.decode(got["origin"])


class StuckHost:
    """A host that is told to stage a build and says it is downloading it, forever."""

    def __init__(self, coord, host_id, stuck=True):
        self.coord, self.id, self.stuck = coord, host_id, stuck
        self.active, self.state, self.staged = "b0", "active", None

    def beat(self):
        about = report_about(self.state, self.active, self.staged, None)
        reply = self.coord.heartbeat(self.id, f"{self.id}:7000", {"web": {
            "state": self.state, "activeBuildID": self.active, "error": "", "about": about}})
        info = reply["projects"].get("web") or {}
        target, stage = info.get("targetBuildID"), (info.get("stage") or {}).get("buildID")
        if stage and stage != self.active and self.staged != stage:
            self.staged, self.state = stage, ("downloading" if self.stuck else "staged")
        if target and target != self.active and not self.stuck:
            self.active, self.state = target, "active"


def test_a_host_that_cannot_stage_is_failed_for_its_wave_once_the_staging_deadline_passes(world):
    """With stage "all", one host that never finished staging held activation everywhere."""
    store, coord, clock = world
    hosts = [StuckHost(coord, f"h{i}", stuck=(i == 0)) for i in range(4)]
    store.deployments.set_dc_current("web", DC, "b0")
    dep = store.deployments.create("web", "b1", "b0", {"steps": [1.0], "minHealthy": 0.7, "bakeS": 0, "stage": "all"},
                                   [REGION], "alice")["deploymentID"]
    for _ in range(50):   # 50 s: within the deadline (60 s + 8 MiB at 10 MB/s)
        for h in hosts:
            h.beat()
        coord.tick()
        clock.t += 1
    assert store.deployments.get(dep)["status"] == "IN_PROGRESS" and not store.deployments.staged_dcs(dep)
    assert all(h.active == "b0" for h in hosts)
    for _ in range(40):
        for h in hosts:
            h.beat()
        coord.tick()
        clock.t += 1
    assert store.deployments.get(dep)["status"] == "COMPLETED", store.deployments.get(dep)
    assert [h.active for h in hosts] == ["b0", "b1", "b1", "b1"]
    assert store.r.hget(keys.host_project(DC, "h0", "web"), "stageLate") == "b1"


def test_a_host_serves_only_the_projects_its_token_names(world):
    """`serves: null` was stored as every project: the host got every project's targets and its
    FAILED reports rolled back projects it had no part in."""
    store, coord, clock = world
    coord.heartbeat("edge", "10.0.0.5:7000", {"web": {"state": "failed", "activeBuildID": None, "error": "x",
                                                       "about": "b1"}}, serving=None, allowed=frozenset({"shop"}))
    assert "edge" not in {h["hostID"] for h in store.hosts.for_project(DC, "web")}
    assert "edge" in {h["hostID"] for h in store.hosts.for_project(DC, "shop")}
    assert store.r.hgetall(keys.host_project(DC, "edge", "web")) == {}   # its report for web was dropped
    coord.heartbeat("edge", "10.0.0.5:7000", {}, serving=["web", "shop"], allowed=frozenset({"shop"}))
    assert "edge" not in {h["hostID"] for h in store.hosts.for_project(DC, "web")}


def test_repair_is_only_for_chunks_of_the_hosts_targets(world):
    """`/repair` took any digest: a store read and a hash per call, and an oracle of what the
    store holds."""
    store, coord, clock = world
    coord._set("h", "web", target="b1")
    mine, other = sorted(coord._chunk_set(M))[0], sorted(coord._chunk_set(OTHER))[0]
    assert coord.repair("h", mine) is True
    assert coord.repair("h", other) is None


@pytest.fixture
def endpoint(world):
    store, coord, clock = world
    coord.clock = lambda: clock.t   # the endpoint's long-polls use real time; the coordinator its own
    ep = HostGateway(coord, SECRET, DC, rate=(5, 10))
    yield ep, coord
    ep.stop()


def call(ep, host, path, body, **kw):
    token = auth.issue_host(SECRET, host, DC)
    return httpx.post(f"{ep.url}{path}", json={"hostID": host, **body},
                      headers={"Authorization": f"Bearer {token}"}, timeout=kw.get("timeout", 10))


def test_peer_addresses_are_host_and_port_only(endpoint):
    """`127.0.0.1:P/internal/admin?x=` was pasted into other hosts' chunk URLs."""
    ep, coord = endpoint
    for bad in ("127.0.0.1:9/internal/admin?x=", "h:7000#", "user@h:7000", "h:99999", "h", "h:0", " h:7000"):
        r = call(ep, "h1", "/heartbeat", {"region": REGION, "address": bad})
        assert r.status_code == 422 and r.json()["error"] == "invalid request", (bad, r.text)
        r = call(ep, "h1", "/peers", {"address": "h1:7000", "artifact": M, "chunks": 8, "wanted": every(8),
                                      "have": bitfield.encode(0), "failed": [bad]})
        assert r.status_code == 422, (bad, r.text)
    assert call(ep, "h1", "/heartbeat", {"region": REGION, "address": "[::1]:7000"}).status_code == 200
    assert store_hosts(coord) == ["h1"]
    # /origin signs at most 1,000 URLs a call (was 5,000), and only for chunks of the host's targets
    many = {"artifact": M, "digests": [f"blake3:{i:064x}" for i in range(1001)]}
    assert call(ep, "h1", "/origin", many).status_code == 422
    r = call(ep, "h1", "/origin", {"artifact": M, "digests": sorted(coord._chunk_set(M))[:2]})
    assert r.status_code == 403   # M is no build h1 is told to run or stage
    r = call(ep, "h1", "/repair", {"digest": sorted(coord._chunk_set(M))[0]})
    assert r.status_code == 403


def store_hosts(coord):
    return [h["hostID"] for h in coord.state.hosts.in_dc(DC)]


def test_each_host_has_a_request_budget_and_one_long_poll(endpoint):
    ep, coord = endpoint
    ep.rate = (0.01, 10)   # a burst of 10, then one more a 100 s: however slowly this test runs
    answers = [call(ep, "greedy", "/heartbeat", {"region": REGION, "address": "10.0.0.9:7000"}) for _ in range(30)]
    codes = [r.status_code for r in answers]
    assert codes[:10] == [200] * 10 and 429 in codes, codes
    r = next(r for r in answers if r.status_code == 429)
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"] == "too many requests"
    assert call(ep, "other", "/heartbeat", {"region": REGION, "address": "10.0.0.8:7000"}).status_code == 200
    # a second long-poll of one host answers the first at once
    first: list = []
    t = threading.Thread(target=lambda: first.append(call(ep, "other", "/watch", {"version": 0, "waitS": 20},
                                                          timeout=30)))
    t.start()
    wait_until(lambda: ep.waiters.get("other"), 10, "the first long-poll to wait")
    second = threading.Thread(target=lambda: call(ep, "other", "/watch", {"version": 0, "waitS": 1}, timeout=30))
    second.start()
    t.join(10)   # half of the 20 s it would have waited
    assert not t.is_alive() and first[0].status_code == 200
    second.join(10)


def test_the_peer_server_caps_connections_and_closes_idle_ones(tmp_path):
    """300 idle connections made 300 threads, unauthenticated."""
    import socket
    import time
    from gantry.node_daemon.chunkcache import ChunkCache
    from gantry.node_daemon.peer_server import PeerServer
    server = PeerServer(ChunkCache(tmp_path / "cache"), max_connections=16, idle_timeout_s=2).start()
    host, port = server.address.rsplit(":", 1)
    before = threading.active_count()
    idle = []
    try:
        for _ in range(120):   # far past the cap (the finding: 300 made 300 threads)
            s = socket.create_connection((host, int(port)))
            idle.append(s)
        wait_until(lambda: threading.active_count() - before <= 16, 10, "the connections past the cap to close")
        time.sleep(0.5)
        assert threading.active_count() - before <= 16
        closed = 0
        for s in idle:
            s.settimeout(10)
            try:
                closed += s.recv(1) == b""   # the server closed it: past the cap at once, idle ones after 2 s
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == 120
        assert httpx.get(f"http://{server.address}/healthz").text == "ok"   # and it serves again
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_host_id_is_its_datacenters(world):
    """Host records were keyed by host ID alone: a host of another datacenter with the same ID
    (its own valid token) overwrote this one's address and read its targets."""
    store, coord, clock = world
    other = Coordinator("eu-west-a", "eu-west", {REGION: [DC], "eu-west": ["eu-west-a"]}, store, clock=clock)
    coord.heartbeat("h1", "10.0.0.1:7000", {"web": {"state": "active", "activeBuildID": "b0", "about": "b0"}})
    coord._set("h1", "web", target="b1")
    other.heartbeat("h1", "10.9.9.9:7000", {"web": {"state": "failed", "activeBuildID": None, "error": "pwned",
                                                     "about": "b1"}})
    mine = store.hosts.for_project(DC, "web")
    assert [(h["hostID"], h["address"], h["state"], h["targetBuildID"]) for h in mine] == [
        ("h1", "10.0.0.1:7000", "active", "b1")]
    assert store.hosts.targets("eu-west-a", "h1") == {}
    assert other.heartbeat("h1", "10.9.9.9:7000", {})["projects"] == {}   # it is not told this one's targets


def test_a_downloader_facing_a_peer_that_only_answers_busy_finishes_from_the_origin_and_reports_it(tmp_path):
    """A real Downloader facing a peer that always answered 503 held 0 of 8 chunks after 30 s
    (origin_after_s = 5): it turned to the origin only when no peer was offered."""
    import os
    from gantry.artifacts.blobstore import FsBlobStore, chunk_key
    from gantry.artifacts.publish import publish
    from gantry.node_daemon.chunkcache import ChunkCache
    from gantry.node_daemon.downloader import Downloader

    liar = BusyPeer()
    address = liar.address
    out = tmp_path / "out"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(2 << 20))
    store = FsBlobStore(tmp_path / "origin")
    manifest, _ = publish(out, store, 256 << 10)
    reports: list[dict] = []

    def tracker(wanted, failed):   # the liar "holds" everything; the tracker hands nothing to the origin
        reports.append(dict(failed))
        return {d: [address] for d in wanted}, set()
    cache = ChunkCache(tmp_path / "me")
    done: list = []
    worker = threading.Thread(target=lambda: done.append(Downloader(
        cache, lambda d: store.get(chunk_key(d)), tracker, credential=lambda: "x", origin_after_s=5,
        busy_budget_s=1).fetch(manifest)), daemon=True)
    worker.start()
    worker.join(60)
    try:
        assert done and cache.missing(manifest) == [], f"{len(cache.missing(manifest))} chunks still missing"
        assert done[0].bytes_from_origin == sum(c.size for c in manifest.unique_chunks())
        assert {address: "busy"} in reports   # told the tracker, which then stops counting its claims
    finally:
        liar.stop()


def test_liars_that_fill_a_chunks_holder_list_cannot_hide_its_real_holder():
    """The tracker keeps a chunk's first holders to name when a sample misses them: liars that
    claim a chunk first fill that list. Each one a downloader reports leaves it, and once they
    are gone the chunk's real holder, which came too late for the list, is named."""
    import random
    from gantry.rollout.tracker import HOLDERS, Tracker
    t = Tracker(max_peers=8, rng=random.Random(7))
    for i in range(2000):
        t.announce(M, f"h{i}", f"10.0.0.{i}:7000", 1, complete=False, now=0)
    for i in range(HOLDERS):
        t.announce(M, f"liar{i}", f"10.9.0.{i}:7000", 1 << 5, complete=False, now=0)
    t.add(M, "h1500", 1 << 5, complete=False, now=0)
    distrusted = 0
    for _ in range(10 * HOLDERS):
        named = {p.host for p in t.peers(M, "asker", 1 << 5)}
        if "h1500" in named and distrusted == HOLDERS:
            break
        for host in sorted(h for h in named if h.startswith("liar")):   # it answered 404: reported
            t.distrust(M, f"10.9.0.{host[4:]}:7000", now=1)
            distrusted += 1
    assert distrusted == HOLDERS
    assert all("h1500" in {p.host for p in t.peers(M, f"asker{q}", 1 << 5)} for q in range(20))
