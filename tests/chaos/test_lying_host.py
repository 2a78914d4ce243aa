"""Chaos on the real stack (issue 22): one compromised host in us-east-a announces every chunk of
every artifact it is told to run or stage, says it runs each build at once, and answers 503 to
every peer. Two projects deployed across both regions still COMPLETE, every honest host runs the
new builds, and the liar loses its claims. The real node daemons are the honest hosts; the liar
speaks the coordinator's real protocol with a real host token."""
import threading
import time
import uuid

import httpx

from gantry.artifacts import bitfield
from gantry.artifacts.manifest import Manifest
from gantry.auth import issue_host
from gantry.state import State
from conftest import host_endpoint
from helpers import BusyPeer, commit, peer_tls, wait_build, wait_until

DC, REGION = "us-east-a", "us-east"
STRATEGY = {"steps": [1.0], "minHealthy": 0.5, "bakeS": 0}   # staged everywhere, then activated


class Liar:
    def __init__(self, stack, projects: list[str]):
        self.peer = BusyPeer(peer_tls(stack))   # a registered host: its certificate is good, its answers are not
        self.address = self.peer.address
        self.id = f"liar-{uuid.uuid4().hex[:6]}"
        token = issue_host(stack.config().jwt_secret(), self.id, DC, projects)
        self.http = host_endpoint(stack, token, DC)
        self.store = httpx.Client(verify=stack.config().http_verify())
        self.chunks: dict[str, int] = {}    # artifact -> its chunk count, from the manifests it is handed
        self.reports: dict[str, dict] = {}
        self.claimed: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.3):
            try:
                self.beat()
            except httpx.HTTPError:
                pass

    def beat(self):
        artifacts = [{"artifact": a, "chunks": n, "bits": bitfield.encode(bitfield.full(n)), "complete": True}
                     for a, n in self.chunks.items()]
        r = self.http.post("/heartbeat", json={"hostID": self.id, "region": REGION, "address": self.address,
                                               "projects": self.reports, "artifacts": artifacts})
        r.raise_for_status()
        for project, info in r.json()["projects"].items():
            target, stage = info.get("targetBuildID"), info.get("stage") or {}
            for what in (info, stage):
                digest = what.get("manifestDigest")
                if digest and digest not in self.chunks:
                    m = Manifest.from_bytes(self.store.get(what["manifestURL"]).content, digest)
                    self.chunks[digest] = len(m.unique_chunks())
                    self.claimed.add(digest)
            if stage.get("buildID") and stage["buildID"] != target:   # "staged it", at once
                self.reports[project] = {"state": "staged", "activeBuildID": target, "about": stage["buildID"]}
            elif target:                                              # "runs it", at once
                self.reports[project] = {"state": "active", "activeBuildID": target, "about": target}

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.peer.stop()
        self.http.close()


def deploy_both(api, builds: dict[str, str]) -> tuple[float, dict]:
    t0 = time.monotonic()
    deps = {p: api.post(f"/projects/{p}/deployments", json={"buildID": b, "strategy": STRATEGY}).json()["deploymentID"]
            for p, b in builds.items()}
    final = {}

    def ended():
        for p, d in deps.items():
            rec = api.get(f"/projects/{p}/deployments/{d}").json()
            if rec["status"] in ("IN_PROGRESS", "PAUSED"):
                return False
            final[p] = rec
        return True
    wait_until(ended, 300, "both deployments to end")
    return time.monotonic() - t0, final


def test_one_lying_host_does_not_stall_two_projects_in_two_regions(api, stack, new_project):
    made = {}
    for name in ("a", "b"):   # 4 MB of noise each: ~16 chunks for the tracker to hand out
        project, sha, repo = new_project("mkdir -p dist && head -c 4000000 /dev/urandom > dist/blob && cat v >> dist/blob",
                                         files={"v": "0\n"})
        made[project] = repo

    def build_all(version):
        builds = {}
        for project, repo in made.items():
            sha = commit(repo, {"v": f"{version}\n"})
            builds[project] = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
        for project, b in builds.items():
            assert wait_build(api, project, b, timeout_s=240)["buildStatus"] == "SUCCEEDED"
        return builds

    honest_s, first = deploy_both(api, build_all(1))
    assert all(d["status"] == "COMPLETED" for d in first.values()), first

    liar = Liar(stack, list(made))
    try:
        wait_until(lambda: all(p in liar.reports for p in made), 30, "the liar to be told the current builds")
        second_builds = build_all(2)
        liar_s, second = deploy_both(api, second_builds)
        assert all(d["status"] == "COMPLETED" for d in second.values()), second
        state = State(stack.config().redis_url)
        honest = [h for h in state.hosts.in_dc(DC) if h["hostID"] != liar.id and h.get("state") != "lost"]
        assert honest
        for project, b in second_builds.items():
            running = {h["hostID"]: h for h in api.get(f"/projects/{project}/hosts").json()}
            for h in honest:
                assert running[h["hostID"]]["activeBuildID"] == b and running[h["hostID"]]["state"] == "active", \
                    running[h["hostID"]]
        assert set(second_builds.values()) and len(liar.claimed) >= 4   # it claimed both projects' both builds
        note = state.hosts.get(DC, liar.id).get("distrusted") or ""
        assert "reported by" in note, state.hosts.get(DC, liar.id)   # it lost its claims
        print(f"\nboth projects, both regions: {honest_s:.1f} s without the liar, {liar_s:.1f} s with it "
              f"({liar_s / honest_s:.2f}x; the issue's bound 2x)")
    finally:
        liar.close()
