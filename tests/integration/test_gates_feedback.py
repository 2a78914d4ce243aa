"""Issue 26's gates and feedback on the real stack, against a fake GitHub API and webhook
subscribers on loopback:

- continuous deployment: a signed, form-encoded push to the default branch ends with the build
  active everywhere, with no other call; GitHub sees pending, success, the Deployment,
  in_progress and success, the first request answered with a rate limit; a subscriber gets the
  signed events in order while another hangs, and the rollout does not wait for it;
- an approval gate holds a deployment at WAITING_APPROVAL until two deployers other than the
  requester approve it, one with `gantry deploy approve`, one with the dashboard's button; each
  is in the audit log;
- a one-minute freeze window refuses a manual deploy naming itself, holds an automatic deploy
  until it ends, lets a rollback and an audited override through.
"""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

from helpers import commit, wait_build, wait_until
from http_fakes import FakeGitHub, Subscriber
from test_gateway import SECRET, deliver, push_payload

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from test_dashboard import click

from conftest import client
from gantry.auth import issue

GANTRY = str(Path(sys.executable).parent / "gantry")
QUICK = {"steps": [1.0], "bakeS": 0}
HOOK_SECRET = "notify-secret-0123456789"


def dep(api, project, dep_id):
    return api.get(f"/projects/{project}/deployments/{dep_id}").json()


def push(stack, project, sha) -> str:
    """A signed push of `sha` to main, as GitHub's default (form-encoded) webhook sends it."""
    body = urlencode({"payload": json.dumps(push_payload(sha))}).encode()
    r = deliver(stack, project, body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 202, r.text
    return r.json()["buildID"]


def auto_deployment(api, project, build_id, timeout_s=180) -> dict:
    """The deployment continuous deployment made of the build."""
    found = {}

    def made():
        for d in api.get(f"/projects/{project}/deployments").json()["deployments"]:
            if d["buildID"] == build_id and d["createdBy"] == "gantry-cd":
                found.update(d)
                return True
        return False
    wait_until(made, timeout_s, f"continuous deployment of {build_id}")
    return found


def test_a_push_deploys_itself_and_github_and_subscribers_hear_of_it(stack, api, new_project):
    github, good, hanging = FakeGitHub("ghp_fake", rate_limit_first=1, reset_s=2), Subscriber(), Subscriber()
    hanging.hang()
    try:
        name, _, repo = new_project("mkdir -p dist && echo one > dist/v")
        r = api.put(f"/projects/{name}", json={
            "repoURL": str(repo), "webhookSecret": SECRET, "deploy": {"auto": True, "strategy": QUICK},
            "github": {"repo": "acme/shop", "token": "ghp_fake", "apiURL": github.url, "environment": "staging"},
            "notifications": [{"events": ["build.*", "deployment.started", "deployment.completed"], "url": good.url + "/hook",
                               "secret": HOOK_SECRET},
                              {"url": hanging.url + "/hook", "secret": HOOK_SECRET}]})
        assert r.status_code == 200, r.text
        shown = r.json()
        assert "ghp_fake" not in r.text and HOOK_SECRET not in r.text and shown["github"]["tokenConfigured"]
        sha = commit(repo, {"v.txt": "two"})
        build_id = push(stack, name, sha)
        made = auto_deployment(api, name, build_id)
        wait_until(lambda: dep(api, name, made["deploymentID"])["status"] == "COMPLETED", 180, "the automatic deployment")
        final = dep(api, name, made["deploymentID"])
        hosts = final["hosts"]   # hosts that earlier tests stopped stay listed, lost
        assert hosts["active"] == hosts["total"] - hosts["lost"] > 0
        assert hanging.received == []   # it hangs on its first notice: the rollout did not wait for it
        seconds = (datetime.fromisoformat(final["updatedAt"]) - datetime.fromisoformat(final["createdAt"])).total_seconds()
        print(f"\nautomatic deployment: {seconds:.1f} s from created to COMPLETED while a subscriber hung "
              f"(predicted {final['prediction'] and final['prediction'].get('predictedSeconds')} s)")

        wait_until(lambda: len(github.calls()) >= 5, 60, "GitHub to hear of the build and the deployment")
        assert github.calls() == [("status", "pending"), ("status", "success"), ("deployment", sha),
                                  ("deployment_status", "in_progress"), ("deployment_status", "success")]
        assert github.problems == []
        assert github.requests[0]["rateLimited"] and github.requests[1]["at"] >= github.requests[0]["reset"] - 1
        assert github.requests[3]["body"]["environment"] == "staging"
        assert github.requests[1]["body"]["target_url"].endswith(f"/ui#/p/{name}/b/{build_id}")

        expected = ["build.queued", "build.succeeded", "deployment.started", "deployment.completed"]
        wait_until(lambda: good.events()[:len(expected)] == expected, 30, "the subscriber's events")
        notices = api.get(f"/projects/{name}/notifications").json()["notices"]
        assert {n["kind"] for n in notices} == {"webhook", "github"}
        stuck = [n for n in notices if n["destination"].get("url", "").startswith(hanging.url)]
        assert stuck and all(n["status"] == "pending" for n in stuck)
        hanging.release()
        wait_until(lambda: [e for e in hanging.events() if e in expected] == expected, 60, "the hung subscriber to catch up")
        assert "deployment.wave_done" in hanging.events()   # it takes every event
    finally:
        github.close()
        good.close()
        hanging.close()


def test_an_approval_gate_waits_for_two_deployers_other_than_the_requester(stack, api, new_project, browser):
    name, sha, _ = new_project("mkdir -p dist && echo one > dist/v")
    build_id = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, name, build_id)["buildStatus"] == "SUCCEEDED"
    secret = stack.config().jwt_secret()
    sam, pat, lee = (issue(secret, u, [name], roles=["deployer"]) for u in ("sam", "pat", "lee"))
    with client(stack, sam) as as_sam:
        accepted = as_sam.post(f"/projects/{name}/deployments", json={"buildID": build_id, "strategy": {
            **QUICK, "approve": {"before": "regionWave:2", "count": 2, "notRequester": True}}}).json()
        dep_id = accepted["deploymentID"]
        wait_until(lambda: dep(api, name, dep_id)["status"] == "WAITING_APPROVAL", 120, "the gate")
        waiting = dep(api, name, dep_id)
        assert waiting["approval"]["gate"] == "regionWave:2" and "not the requester" in waiting["approval"]["mayApprove"]
        first, second = waiting["regions"]
        assert first["hosts"]["active"] == first["hosts"]["total"] - first["hosts"]["lost"] > 0
        assert second["hosts"]["active"] == 0
        refused = as_sam.post(f"/projects/{name}/deployments/{dep_id}/approve", json={})
        assert refused.status_code == 403 and "another person" in refused.json()["detail"]
    env = {**os.environ, "GANTRY_URL": stack.config().api_url, "GANTRY_CA": stack.config().ca_file, "GANTRY_TOKEN": pat}
    r = subprocess.run([GANTRY, "deploy", "approve", name, dep_id, "--comment", "eu looks quiet"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and "WAITING_APPROVAL" in r.stdout, r.stdout + r.stderr   # 1 of 2
    # the second, from the dashboard's deployment page
    wait = WebDriverWait(browser, 60, poll_frequency=0.3, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{stack.config().api_url}/ui")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=token-input]").send_keys(lee)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=save-token]").click()
    browser.get(f"{stack.config().api_url}/ui#/p/{name}/d/{dep_id}")
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=approval]"), "approved by pat"))
    click(wait, "[data-testid=approve-button]")
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=deployment-status]"), "COMPLETED"))
    assert dep(api, name, dep_id)["reason"].startswith("regionWave:2 approved")
    entries = api.get("/audit", params={"project": name}).json()["entries"]
    approvals = [(e["user"], e["detail"].get("comment")) for e in entries if e["action"] == "deployment.approve"]
    assert approvals == [("lee", ""), ("pat", "eu looks quiet")]
    assert ("sam", "deployment.create") in [(e["user"], e["action"]) for e in entries]


def test_a_one_minute_freeze_refuses_holds_and_lets_rollbacks_and_overrides_through(stack, api, new_project):
    name, _, repo = new_project("mkdir -p dist && cat v.txt > dist/v")
    base = {"repoURL": str(repo), "webhookSecret": SECRET, "deploy": {"auto": True, "strategy": QUICK}}
    assert api.put(f"/projects/{name}", json=base).status_code == 200
    # two good builds deployed (one after the other, through the queue), so there is something to roll back to
    builds = [push(stack, name, commit(repo, {"v.txt": text})) for text in ("one", "two")]
    made = [auto_deployment(api, name, b) for b in builds]
    wait_until(lambda: all(dep(api, name, d["deploymentID"])["status"] == "COMPLETED" for d in made), 180, "both")
    if made[0]["createdAt"] > made[1]["createdAt"]:   # "two" built first, so it deployed first
        builds.reverse()
    now = datetime.now(timezone.utc)
    window = {"reason": "launch day", "start": (now - timedelta(seconds=1)).isoformat(),
              "end": (now + timedelta(seconds=60)).isoformat()}
    assert api.put(f"/projects/{name}", json={**base, "freeze": [window]}).status_code == 200
    ends = datetime.fromisoformat(window["end"])

    refused = api.post(f"/projects/{name}/deployments", json={"buildID": builds[0]})
    assert refused.status_code == 409 and "freeze window 'launch day'" in refused.json()["detail"], refused.text
    third = push(stack, name, commit(repo, {"v.txt": "three"}))
    held = auto_deployment(api, name, third)
    assert held["status"] == "QUEUED" and "waits for the project freeze window 'launch day'" in held["reason"]

    back = api.post(f"/projects/{name}/rollback", json={})
    assert back.status_code == 202 and back.json()["status"] == "IN_PROGRESS" and back.json()["buildID"] == builds[0]
    wait_until(lambda: dep(api, name, back.json()["deploymentID"])["status"] == "COMPLETED", 120, "the rollback")
    pat = issue(stack.config().jwt_secret(), "pat", [name], roles=["deployer"])
    with client(stack, pat) as as_pat:
        over = as_pat.post(f"/projects/{name}/deployments", json={
            "buildID": builds[1], "overrideFreeze": True, "reason": "hotfix for the launch"})
        assert over.status_code == 202 and over.json()["status"] == "IN_PROGRESS", over.text
    wait_until(lambda: dep(api, name, over.json()["deploymentID"])["status"] == "COMPLETED", 120, "the override")
    entry = next(e for e in api.get("/audit", params={"project": name}).json()["entries"]
                 if e["target"] == over.json()["deploymentID"])
    assert entry["user"] == "pat" and entry["detail"]["freezeOverride"]["reason"] == "hotfix for the launch"

    while datetime.now(timezone.utc) < ends - timedelta(seconds=1):   # held for the whole window
        assert dep(api, name, held["deploymentID"])["status"] == "QUEUED"
        time.sleep(1)
    wait_until(lambda: dep(api, name, held["deploymentID"])["status"] == "COMPLETED", 180,
               "the held automatic deployment, once the window ended")
