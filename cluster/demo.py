"""`make demo`: bring the local stack up, build a sample repository it creates, replicate it,
deploy it to every host, deploy a second project and a second version at the same time to the
same hosts, roll back, and leave the stack running."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from gantry.cluster.cli import default_home
from gantry.cluster.stack import Stack, wait_for
from gantry.auth import issue
from gantry.statuses import DeploymentStatus

SAMPLE_TOML = """[build]
command = "sh build.sh"
output = "dist"
timeout = 120

[deploy]
health = "./bin/app | grep -q gantry"
"""
SAMPLE_BUILD = """set -e
echo "compiling $(cat NAME) (commit $GANTRY_COMMIT_SHA)"
mkdir -p dist/bin
cat > dist/bin/app <<EOF
#!/bin/sh
echo "$(cat NAME) from gantry, version $(cat VERSION)"
EOF
chmod +x dist/bin/app
sleep 2
echo "done: $(ls -R dist | wc -l) entries"
"""


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), "-c", "user.email=demo@gantry", "-c", "user.name=demo", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def sample_repo(path: Path, name: str) -> str:
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
        (path / "gantry.toml").write_text(SAMPLE_TOML)
        (path / "build.sh").write_text(SAMPLE_BUILD)
        (path / "VERSION").write_text("1\n")
        (path / "NAME").write_text(f"{name}\n")
        git(path, "add", "-A")
        git(path, "commit", "-qm", "hello")
    return git(path, "rev-parse", "HEAD")


def next_version(path: Path) -> str:
    version = int((path / "VERSION").read_text()) + 1
    (path / "VERSION").write_text(f"{version}\n")
    git(path, "commit", "-qam", f"version {version}")
    return git(path, "rev-parse", "HEAD")


def gantry(*args: str, env: dict) -> subprocess.CompletedProcess:
    """Run the `gantry` CLI as a user would, showing the command and its live progress."""
    print(f"$ gantry {' '.join(args)}", flush=True)
    return subprocess.run([str(Path(sys.executable).parent / "gantry"), *args], env=env)


def gantry_json(*args: str, env: dict) -> dict:
    return json.loads(subprocess.run([str(Path(sys.executable).parent / "gantry"), *args, "--json"], env=env,
                                     check=True, capture_output=True, text=True).stdout)


def show_hosts(home: Path) -> None:
    """What three hosts run, for every project each serves (its projects/<p>/current)."""
    for host in sorted(p for p in (home / "hosts").iterdir() if p.is_dir())[:3]:
        for current in sorted((host / "projects").glob("*/current")):
            out = subprocess.run([str(current / "bin" / "app")], capture_output=True, text=True,
                                 cwd=current).stdout.strip()
            print(f"      {host.name} {current.parent.name}: current -> {os.readlink(current)}: {out}")


def main() -> int:
    home = Path(default_home()).resolve()
    port = int(os.environ.get("GANTRY_API_PORT", "8000"))
    stack = Stack(home)
    print(f"== starting the local stack in {home} (redis, S3 per region, Ray nodes, actors, API, hosts)")
    cfg = stack.up(api_port=port)
    token = issue(cfg.jwt_secret(), "demo", admin=True)
    env = {**os.environ, "GANTRY_URL": cfg.api_url, "GANTRY_TOKEN": token, "GANTRY_CA": cfg.ca_file}
    api = httpx.Client(base_url=cfg.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                       verify=cfg.http_verify())

    repo, other = home / "sample-repo", home / "sample-repo-greet"
    sha, greet_sha = sample_repo(repo, "hello"), sample_repo(other, "greet")
    print(f"== sample repositories {repo} at {sha[:12]} and {other} at {greet_sha[:12]}")
    gantry("project", "add", "hello", str(repo), env=env)
    gantry("project", "add", "greet", str(other), env=env)
    wait_for(lambda: len(api.get("/projects/hello/hosts").json()) >= len(cfg.regions), 60, "hosts to register")

    print("== build it (sandboxed), store it as chunks, replicate it to every region")
    if gantry("build", "hello", sha, "--wait", env=env).returncode != 0:
        return 1
    first = gantry_json("builds", "hello", "--limit", "1", env=env)["builds"][0]["buildID"]
    print("== deploy it to every host: staged everywhere first, then activated with a canary, 10%, 50%, 100%"
          " of each datacenter, the first region alone, then the others together")
    if gantry("deploy", "hello", first, "--steps", "1,0.1,0.5,1.0", "--bake", "1", "--wait", env=env).returncode:
        return 1
    show_hosts(home)
    print("== a second project, and version 2 of the first: both deploy at once to the same hosts")
    if gantry("build", "greet", greet_sha, "--wait", env=env).returncode != 0:
        return 1
    if gantry("build", "hello", next_version(repo), "--wait", env=env).returncode != 0:
        return 1
    greet = gantry_json("builds", "greet", "--limit", "1", env=env)["builds"][0]["buildID"]
    second = gantry_json("builds", "hello", "--limit", "1", env=env)["builds"][0]["buildID"]
    gantry("deploy", "greet", greet, "--steps", "1,1.0", "--bake", "1", env=env)
    gantry("deploy", "hello", second, "--steps", "1,1.0", "--bake", "1", "--wait", env=env)
    wait_for(lambda: api.get("/projects/greet/deployments").json()["deployments"][0]["status"] == DeploymentStatus.COMPLETED,
             180, "greet's deployment")
    show_hosts(home)
    print("== roll back to the previous good build")
    back = gantry("rollback", "hello", "--wait", env=env)
    show_hosts(home)
    gantry("audit", "--project", "hello", "--limit", "8", env=env)

    print(f"\nAPI        {cfg.api_url}")
    print(f"dashboard  {cfg.api_url}/ui#token={token}")
    if cfg.ca_file:
        print(f"TLS        every listener's certificate is from the stack's CA {cfg.ca_file}: import it into "
              "your browser, or it warns about the dashboard; the CLI uses it by itself (GANTRY_CA elsewhere)")
    print(f"token      {token}")
    print(f"metrics    {stack.status()['metricsURL']}   (Prometheus text; every node: gantry status --json)")
    print(f"The stack keeps running. Stop it with: make down   (or .venv/bin/gantry down --home {home})")
    return back.returncode


if __name__ == "__main__":
    sys.exit(main())
