"""Issue 14's dry run on the stack: `POST /projects/{p}/deployments?dryRun=true` simulates the
project's registered hosts and creates nothing; its prediction for a small deployment on real
daemons is within a factor of 2 of what the deployment then takes."""
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from gantry.auth import issue
from gantry.state import State
from helpers import wait_build, wait_until

GANTRY = str(Path(sys.executable).parent / "gantry")

STRATEGY = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 1}


def at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_dry_run_creates_nothing_and_predicts_within_a_factor_of_two(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && head -c 4000000 /dev/urandom > dist/blob")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    state = State(stack.config().redis_url)
    before = (api.get(f"/projects/{project}/deployments").json(), state.deployments.desired(project))

    r = api.post(f"/projects/{project}/deployments?dryRun=true", json={"buildID": b, "strategy": STRATEGY})
    assert r.status_code == 200, r.text
    p = r.json()
    assert {x["region"] for x in p["perRegion"]} == {"us-east", "eu-west"}
    assert p["status"] == "COMPLETED" and p["predictedSeconds"] > 0
    assert p["assumptions"]["hosts"] >= 4 and 4_000_000 <= p["assumptions"]["sizeBytes"] < 4_100_000   # the packed tree
    # the usual checks, and a 4xx that changes nothing
    bad = api.post(f"/projects/{project}/deployments?dryRun=true",
                   json={"buildID": b, "strategy": {**STRATEGY, "regionWaves": [["mars"]]}})
    assert bad.status_code == 400 and "mars" in bad.json()["detail"]
    assert api.post(f"/projects/{project}/deployments?dryRun=true", json={"buildID": "0" * 32}).status_code == 404
    env = {**os.environ, "GANTRY_URL": stack.config().api_url, "GANTRY_CA": stack.config().ca_file,
           "GANTRY_TOKEN": issue(stack.config().jwt_secret(), "cli-user", admin=True)}
    cli = [GANTRY, "deploy", project, b, "--steps", "1,1.0", "--bake", "1", "--dry-run"]
    r = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "predicted:" in r.stdout and "nothing was created" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(r.stdout)["predictedSeconds"] > 0
    after = (api.get(f"/projects/{project}/deployments").json(), state.deployments.desired(project))
    assert after == before   # no deployment, no desired state

    dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": STRATEGY}).json()["deploymentID"]
    wait_until(lambda: api.get(f"/projects/{project}/deployments/{dep}").json()["status"] not in ("IN_PROGRESS", "PAUSED"),
               300, "the deployment")
    d = api.get(f"/projects/{project}/deployments/{dep}").json()
    assert d["status"] == "COMPLETED", d
    measured = at(d["updatedAt"]) - at(d["createdAt"])
    predicted = d["prediction"]["predictedSeconds"]   # made when it was created, kept with it
    print(f"dry run predicted {p['predictedSeconds']} s; at creation {predicted} s; measured {measured:.1f} s")
    assert predicted / 2 <= measured <= predicted * 2
    assert d["prediction"]["timeline"] and d["prediction"]["assumptions"]["hosts"] == p["assumptions"]["hosts"]
