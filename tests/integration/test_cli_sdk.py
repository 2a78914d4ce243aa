"""The `gantry` CLI and the Python SDK (HTTP and in-cluster) against the live stack."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import commit, make_repo

from gantry.client import GantryError, HttpClient, InClusterClient
from gantry.auth import issue
from gantry.models import Build, BuildPage, Deployment

GANTRY = str(Path(sys.executable).parent / "gantry")


@pytest.fixture(scope="module")
def cli(stack):
    """Run `gantry ...` as a user would, with GANTRY_URL and GANTRY_TOKEN set."""
    env = {**os.environ, "GANTRY_URL": stack.config().api_url, "GANTRY_CA": stack.config().ca_file,
           "GANTRY_TOKEN": issue(stack.config().jwt_secret(), "cli-user", admin=True)}

    def run(*args, timeout=300):
        return subprocess.run([GANTRY, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return run


def out(r: subprocess.CompletedProcess) -> dict | list:
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def test_cli_every_command_against_the_live_stack(cli, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    repo, sha = make_repo(tmp_path / name, "mkdir -p dist && echo one > dist/v && echo building")
    r = cli("project", "add", name, str(repo), "--webhook-secret", "s" * 20, "--coalesce")
    assert r.returncode == 0 and f"/webhooks/github/{name}" in r.stdout, r.stderr
    shown = out(cli("project", "show", name, "--json"))
    assert shown["coalesce"] is True and shown["webhookConfigured"] is True and "s" * 20 not in json.dumps(shown)
    assert name in cli("project", "list").stdout
    r = cli("project", "add", name, str(repo), "--build-command", "make", "--output", "out", "--cache", "~/.ccache",
            "--cache", "deps", "--cpus", "2", "--fetch", "pip download -d deps x", "--egress-allow", "pypi.org",
            "--health", "./ok")
    assert r.returncode == 0, r.stderr
    shown = out(cli("project", "show", name, "--json"))
    assert shown["build"] == {"command": "make", "output": "out", "cache": ["~/.ccache", "deps"], "cpus": 2.0,
                              "fetch": "pip download -d deps x"}
    gates = {"concurrency": "queue", "auto": False, "duringFreeze": "refuse"}
    assert shown["deploy"] == {"health": "./ok", **gates} and shown["egressAllow"] == ["pypi.org"]
    assert "egressAllow: pypi.org" in cli("project", "show", name).stdout
    r = cli("project", "add", name, str(repo), "--cache", "../etc")
    assert r.returncode == 2 and "must be inside the checkout" in r.stderr, r.stderr
    shown = out(cli("project", "add", name, str(repo), "--build-command", "true", "--health", "", "--json"))
    assert shown["build"] == {"command": "true"} and shown["deploy"] == {"health": "", **gates}   # each replaces the last
    subs = tmp_path / "subs.json"
    subs.write_text(json.dumps([{"events": ["deployment.*"], "url": "https://hooks.example/x", "secret": "k" * 16}]))
    shown = out(cli("project", "add", name, str(repo), "--during-freeze", "wait", "--concurrency", "supersede",
                    "--notifications", str(subs), "--github", "acme/web", "--github-token", "ghp_x", "--json"))
    assert shown["deploy"] == {"health": "", **gates, "duringFreeze": "wait", "concurrency": "supersede"}   # the rest kept
    assert shown["notifications"][0]["url"] == "https://hooks.example/x" and "k" * 16 not in json.dumps(shown)
    assert shown["github"]["repo"] == "acme/web" and "ghp_x" not in json.dumps(shown)
    assert out(cli("notifications", name, "--json"))["notices"] == []
    assert out(cli("project", "add", name, str(repo), "--github", "", "--json"))["github"] is None

    r = cli("build", name, sha, "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCEEDED" in r.stdout and "replication" in r.stdout and "eu-west" in r.stdout
    page = BuildPage.model_validate_json(cli("builds", name, "--json").stdout)
    b1 = page.builds[0].buildID
    assert page.builds[0].buildStatus == "SUCCEEDED"
    assert cli("builds", name).stdout.splitlines()[1].startswith(b1)
    assert Build.model_validate_json(cli("status", name, b1, "--json").stdout).buildStatus == "SUCCEEDED"
    assert "building" in cli("logs", name, b1).stdout
    assert "building" in cli("logs", name, b1, "-f").stdout

    r = cli("deploy", name, b1, "--steps", "1,1.0", "--bake", "0", "--wait")
    assert r.returncode == 0 and "COMPLETED" in r.stdout and "active" in r.stdout, r.stdout + r.stderr
    deps = out(cli("deployments", name, "--json"))["deployments"]
    assert deps[0]["buildID"] == b1 and deps[0]["status"] == "COMPLETED"
    one = Deployment.model_validate_json(cli("deployments", name, deps[0]["deploymentID"], "--json").stdout)
    assert one.hosts.active == one.hosts.total - one.hosts.lost > 0   # hosts lost by earlier tests stay listed
    hosts = out(cli("hosts", name, "--json"))
    assert hosts and all(h["activeBuildID"] == b1 for h in hosts if h["state"] != "lost")

    sha2 = commit(repo, {"gantry.toml": '[build]\ncommand = "mkdir -p dist && echo two > dist/v"\noutput = "dist"\n'})
    b2 = out(cli("build", name, sha2, "--json"))["buildID"]
    assert cli("build", name, sha2, "--wait").returncode == 0
    dep = out(cli("deploy", name, b2, "--steps", "1,1.0", "--bake", "5", "--json"))["deploymentID"]
    assert out(cli("pause", name, dep, "--json"))["status"] == "PAUSED"
    assert out(cli("resume", name, dep, "--json"))["status"] == "IN_PROGRESS"
    r = cli("rollback", name, "--wait")
    assert r.returncode == 0 and "COMPLETED" in r.stdout, r.stdout + r.stderr
    after = out(cli("hosts", name, "--json"))
    assert all(h["activeBuildID"] == b1 for h in after if h["state"] != "lost"), (b1, b2, after, r.stdout)

    slow = commit(repo, {"gantry.toml": '[build]\ncommand = "sleep 30"\noutput = "dist"\n'})
    b3 = out(cli("build", name, slow, "--json"))["buildID"]
    assert out(cli("cancel", name, b3, "--json"))["buildStatus"] == "CANCELLED"
    b2_status = out(cli("status", name, b2, "--json"))["buildStatus"]
    assert b2_status == "SUCCEEDED"

    audit = out(cli("audit", "--project", name, "--limit", "100", "--json"))["entries"]
    assert {"project.register", "build.create", "build.cancel", "deployment.create", "deployment.pause",
            "deployment.resume", "rollback"} <= {e["action"] for e in audit}
    assert all(e["user"] == "cli-user" for e in audit)


def test_cli_wait_exit_codes_on_failure(cli, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    repo, sha = make_repo(tmp_path / name, "echo compile error >&2; exit 3")
    assert cli("project", "add", name, str(repo)).returncode == 0
    r = cli("build", name, sha, "--wait")
    assert r.returncode == 1 and "FAILED" in r.stdout and "compile error" in r.stdout

    good = commit(repo, {"gantry.toml": '[build]\ncommand = "mkdir -p dist && echo ok > dist/state"\noutput = "dist"\n'})
    assert cli("build", name, good, "--wait").returncode == 0
    ok_id = out(cli("builds", name, "--json"))["builds"][0]["buildID"]
    assert cli("deploy", name, ok_id, "--steps", "1.0", "--bake", "0", "--wait").returncode == 0
    sick = commit(repo, {"gantry.toml": '[build]\ncommand = "mkdir -p dist && echo sick > dist/state"\n'
                                        'output = "dist"\n[deploy]\nhealth = "grep -q ok state"\n'})
    assert cli("build", name, sick, "--wait").returncode == 0
    sick_id = out(cli("builds", name, "--json"))["builds"][0]["buildID"]
    r = cli("deploy", name, sick_id, "--steps", "1,1.0", "--bake", "0", "--wait")
    assert r.returncode == 1 and "ROLLED_BACK" in r.stdout, r.stdout + r.stderr


def test_cli_errors_are_json_on_stderr_with_exit_2(cli, stack, tmp_path):
    r = cli("status", "no-such-project", "0" * 32, "--json")
    assert r.returncode == 2 and json.loads(r.stderr) == {"status": 404, "error": "project not found",
                                                          "detail": "no-such-project"}
    r = cli("deploy", "Bad Name", "0" * 32)
    assert r.returncode == 2 and json.loads(r.stderr)["status"] == 400


def test_cli_uses_the_local_stack_without_url_or_token(stack):
    env = {k: v for k, v in os.environ.items() if k not in ("GANTRY_URL", "GANTRY_TOKEN")}
    r = subprocess.run([GANTRY, "project", "list", "--json", "--home", str(stack.home)], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list), r.stderr


def test_sdk_http_and_in_cluster_clients_agree(stack, tmp_path):
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    repo, sha = make_repo(tmp_path / name, "mkdir -p dist && echo sdk > dist/v")
    token = issue(stack.config().jwt_secret(), "sdk-user", admin=True)
    http = HttpClient(stack.config().api_url, token, stack.config().ca_file)
    stack.connect()
    local = InClusterClient(token)

    assert http.register(name, str(repo)).projectName == name
    accepted = local.build(name, sha, env={"FLAVOUR": "sdk"})
    done = http.wait_build(name, accepted.buildID, timeout_s=120, poll_s=0.3)
    assert done.buildStatus == "SUCCEEDED" and done.buildDetails["env"] == {"FLAVOUR": "sdk"}
    assert local.get_build(name, accepted.buildID) == http.get_build(name, accepted.buildID)
    assert local.builds(name) == http.builds(name)
    assert "".join(local.follow_logs(name, accepted.buildID)) == "".join(http.follow_logs(name, accepted.buildID))
    second = http.build(name, sha)
    assert [b.buildID for b in local.iter_builds(name, page_size=1)] == [second.buildID, accepted.buildID]
    assert local.cancel(name, second.buildID).buildStatus == "CANCELLED"

    dep = local.deploy(name, accepted.buildID, {"steps": [1.0], "bakeS": 0})
    final = http.wait_deployment(name, dep.deploymentID, timeout_s=120, poll_s=0.5)
    assert final.status == "COMPLETED"
    assert local.deployment(name, dep.deploymentID).status == "COMPLETED"
    assert local.deployments(name).deployments[0].deploymentID == dep.deploymentID
    assert {h.hostID for h in local.hosts(name)} == {h.hostID for h in http.hosts(name)}
    assert [e.action for e in local.audit(name).entries][:2] == ["deployment.create", "build.cancel"]

    for client in (http, local):  # the same typed errors from both
        with pytest.raises(GantryError) as e:
            client.get_build(name, "f" * 32)
        assert e.value.status == 404 and e.value.error == "build not found"
        with pytest.raises(GantryError) as e:
            client.pause(name, dep.deploymentID)
        assert e.value.status == 409
    with pytest.raises(GantryError) as e:  # the in-cluster door checks its arguments too
        local._call("get_build", projectName=name)
    assert e.value.status == 400 and e.value.error == "bad arguments"
    viewer = InClusterClient(issue(stack.config().jwt_secret(), "viewer", [name]))
    with pytest.raises(GantryError) as e:
        viewer.audit()
    assert e.value.status == 403
    with pytest.raises(GantryError) as e:
        InClusterClient("not-a-token").projects()
    assert e.value.status == 401
