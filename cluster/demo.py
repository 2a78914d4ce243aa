"""`make demo`: bring the local stack up, build a sample repository it creates, replicate it,
deploy it to every host, deploy a second version, roll back, and leave the stack running."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gantry.cluster.cli import default_home
from gantry.cluster.stack import Stack, wait_for
from gantry.serve_app.auth import issue

SAMPLE_TOML = """[build]
command = "sh build.sh"
output = "dist"
timeout = 120

[deploy]
health = "./bin/hello | grep -q hello"
"""
SAMPLE_BUILD = """set -e
echo "compiling hello (commit $GANTRY_COMMIT_SHA)"
mkdir -p dist/bin
cat > dist/bin/hello <<EOF
#!/bin/sh
echo "hello from gantry, version $(cat VERSION)"
EOF
chmod +x dist/bin/hello
sleep 2
echo "done: $(ls -R dist | wc -l) entries"
"""


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), "-c", "user.email=demo@gantry", "-c", "user.name=demo", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def sample_repo(path: Path) -> str:
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", str(path)], check=True)
        (path / "gantry.toml").write_text(SAMPLE_TOML)
        (path / "build.sh").write_text(SAMPLE_BUILD)
        (path / "VERSION").write_text("1\n")
        git(path, "add", "-A")
        git(path, "commit", "-qm", "hello")
    return git(path, "rev-parse", "HEAD")


def next_version(path: Path) -> str:
    version = int((path / "VERSION").read_text()) + 1
    (path / "VERSION").write_text(f"{version}\n")
    git(path, "commit", "-qam", f"version {version}")
    return git(path, "rev-parse", "HEAD")


def run_build(api: httpx.Client, sha: str) -> dict:
    r = api.post("/projects/hello/builds", json={"commitSHA": sha})
    build = r.json()
    print(f"POST /projects/hello/builds -> {r.status_code} build {build['buildID']} of {sha[:12]}")
    last, offset, t0 = build["buildStatus"], 0, time.monotonic()
    print(f"  [  0.0s] {last}")
    while True:
        rec = api.get(f"/projects/hello/builds/{build['buildID']}").json()
        if rec["buildStatus"] != last:
            last = rec["buildStatus"]
            print(f"  [{time.monotonic() - t0:5.1f}s] {last}")
        log = api.get(f"/projects/hello/builds/{build['buildID']}/logs", params={"offset": offset}).json()
        for line in log["data"].splitlines():
            print(f"      | {line}")
        offset = log["nextOffset"]
        if log["complete"] or time.monotonic() - t0 > 300:
            break
        time.sleep(0.3)
    rec = api.get(f"/projects/hello/builds/{build['buildID']}").json()
    for row in rec["replication"]:
        print(f"      replication {row['region']:>9}: {row['replicationStatus']} "
              f"({row['bytesTransferred']} bytes moved, {row['bytesSkipped']} already there)")
    return rec


def run_deploy(api: httpx.Client, path: str, body: dict, home: Path) -> dict:
    r = api.post(path, json=body)
    dep = r.json()
    print(f"POST {path} -> {r.status_code} deployment {dep['deploymentID']} of build {dep['buildID']}")
    t0, last = time.monotonic(), None
    while True:
        d = api.get(f"/projects/hello/deployments/{dep['deploymentID']}").json()
        progress = "  ".join(f"{x['region']} {x['hosts']['active']}/{x['hosts']['total']}" for x in d["regions"])
        if (d["status"], progress) != last:
            last = (d["status"], progress)
            print(f"  [{time.monotonic() - t0:5.1f}s] {d['status']:<11} hosts active: {progress}")
        if d["status"] not in ("PENDING", "IN_PROGRESS", "PAUSED") or time.monotonic() - t0 > 300:
            break
        time.sleep(0.5)
    for host in sorted((home / "hosts").iterdir())[:3]:
        out = subprocess.run([str(host / "current" / "bin" / "hello")], capture_output=True, text=True).stdout
        print(f"      {host.name}: current -> {os.readlink(host / 'current')}: {out.strip()}")
    return d


def main() -> int:
    home = Path(default_home()).resolve()
    port = int(os.environ.get("GANTRY_API_PORT", "8000"))
    stack = Stack(home)
    print(f"== starting the local stack in {home} (redis, S3 per region, Ray nodes, actors, API, hosts)")
    cfg = stack.up(api_port=port)
    token = issue(cfg.jwt_secret(), "demo", admin=True)
    api = httpx.Client(base_url=cfg.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    repo = home / "sample-repo"
    sha = sample_repo(repo)
    print(f"== sample repository {repo} at {sha[:12]}")
    r = api.put("/projects/hello", json={"repoURL": str(repo)})
    print(f"PUT  /projects/hello -> {r.status_code}")
    wait_for(lambda: len(api.get("/projects/hello/hosts").json()) >= len(cfg.regions), 60, "hosts to register")

    first = run_build(api, sha)
    if first["buildStatus"] != "SUCCEEDED":
        return 1
    print("== deploy it to every host (canary, then 10%, 50%, 100% of each datacenter; regions in turn)")
    run_deploy(api, "/projects/hello/deployments",
               {"buildID": first["buildID"], "strategy": {"steps": [1, 0.1, 0.5, 1.0], "bakeS": 1}}, home)
    print("== version 2: build and deploy")
    second = run_build(api, next_version(repo))
    run_deploy(api, "/projects/hello/deployments",
               {"buildID": second["buildID"], "strategy": {"steps": [1, 1.0], "bakeS": 1}}, home)
    print("== roll back to the previous good build")
    back = run_deploy(api, "/projects/hello/rollback", {}, home)

    print(f"API        {cfg.api_url}   (token: {token})")
    print(f"dashboard  {cfg.dashboard_url}")
    print(f"The stack keeps running. Stop it with: make down   (or .venv/bin/gantry down --home {home})")
    return 0 if back["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
