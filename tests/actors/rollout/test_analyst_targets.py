"""The apps' Prometheus discovery targets the analyst writes, and the verdicts the coordinators
wait for (real Redis, the coordinator test's simulated hosts; no Prometheus needed)."""
import json

from gantry.actors.rollout.analyst import Analyst
from gantry.records import Deployment
from gantry.statuses import AnalysisOutcome as O
from test_coordinator import REGIONS, fleet, run, world  # noqa: F401  (world: the fixture)

ANALYSIS = {"intervalS": 5, "metrics": [{"name": "e", "kind": "threshold", "query": 'x{h=~"{{hosts}}"}',
                                         "failure": {"op": ">", "value": 1}}]}
SLOW = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0, "regionWaves": [["us-east", "eu-west"]]}


def labels(tmp_path, project="web"):
    return {t["labels"]["gantry_host"]: (t["targets"], t["labels"])
            for t in json.loads((tmp_path / f"apps-{project}.json").read_text())}


def test_targets_label_each_hosts_build_and_wave_and_the_wave_waits_for_its_verdict(world, tmp_path):
    store, coords, clock = world
    store.projects.put("web", "/srv/web", {"metricsPort": "9100"})
    analyst = Analyst(store, REGIONS, prometheus=None, default_url="", scrape_s=1, targets_dir=str(tmp_path), clock=clock)
    hosts = fleet(coords, n=3)
    first = store.deployments.create("web", "b1", None, SLOW, list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=12)
    analyst.write_targets({})
    seen = labels(tmp_path)
    assert set(seen) == {h.id for hs in hosts.values() for h in hs}
    targets, lb = seen["us-east-0"]
    assert targets == ["us-east-0:9100"] and lb == {"gantry_project": "web", "gantry_build": "b1", "gantry_dc": "us-east-a",
                                                    "gantry_region": "us-east", "gantry_host": "us-east-0", "gantry_wave": "none"}

    dep = store.deployments.create("web", "b2", first["buildID"], SLOW, list(REGIONS), "alice", analysis=ANALYSIS)
    run(coords, hosts, clock, rounds=12)
    analyst.write_targets({"web": Deployment.from_hash(store.deployments.get(dep["deploymentID"]))})
    waves = {h: lb["gantry_wave"] for h, (_, lb) in labels(tmp_path).items()}
    builds = {h: lb["gantry_build"] for h, (_, lb) in labels(tmp_path).items()}
    assert waves == {"us-east-0": "1", "us-east-1": "baseline", "us-east-2": "baseline",
                     "eu-west-0": "1", "eu-west-1": "baseline", "eu-west-2": "baseline"}   # the canaries, still baking
    assert builds["us-east-0"] == "b2" and builds["us-east-1"] == "b1"
    store.analyses.conclude(dep["deploymentID"], "us-east-a", 0, O.PASS, "2 intervals passed")
    store.analyses.conclude(dep["deploymentID"], "eu-west-a", 0, O.FAIL, "e = 3, which is > 1")
    run(coords, hosts, clock, rounds=12)
    d = store.deployments.get(dep["deploymentID"])
    assert d["status"] == "ROLLED_BACK" and d["reason"] == "eu-west-a: wave 1: canary analysis failed: e = 3, which is > 1"
    assert all(h.active == "b1" for hs in hosts.values() for h in hs)


def test_removing_the_metrics_port_removes_the_targets(world, tmp_path):
    store, coords, clock = world
    store.projects.put("web", "/srv/web", {"metricsPort": "9100"})
    analyst = Analyst(store, REGIONS, prometheus=None, default_url="", scrape_s=1, targets_dir=str(tmp_path), clock=clock)
    hosts = fleet(coords, n=1)
    store.deployments.create("web", "b1", None, SLOW, list(REGIONS), "alice")
    run(coords, hosts, clock, rounds=6)
    analyst.write_targets({})
    assert (tmp_path / "apps-web.json").exists()
    store.projects.put("web", "/srv/web", {"metricsPort": ""})
    analyst.write_targets({})
    assert not (tmp_path / "apps-web.json").exists()
