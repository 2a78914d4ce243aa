"""`make demo`: bring the local stack up, build a sample repository it creates, show the build
going through its states, and leave the stack running."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gantry.cluster.cli import default_home
from gantry.cluster.stack import Stack
from gantry.serve_app.auth import issue

SAMPLE_TOML = """[build]
command = "sh build.sh"
output = "dist"
timeout = 120
"""
SAMPLE_BUILD = """set -e
echo "compiling hello (commit $GANTRY_COMMIT_SHA)"
mkdir -p dist/bin
cat > dist/bin/hello <<'EOF'
#!/bin/sh
echo "hello from gantry"
EOF
chmod +x dist/bin/hello
sleep 2
echo "done: $(ls -R dist | wc -l) entries"
"""


def sample_repo(path: Path) -> str:
    git = lambda *a: subprocess.run(["git", "-C", str(path), "-c", "user.email=demo@gantry", "-c",
                                     "user.name=demo", *a], check=True, capture_output=True, text=True).stdout.strip()
    if not (path / ".git").exists():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", str(path)], check=True)
        (path / "gantry.toml").write_text(SAMPLE_TOML)
        (path / "build.sh").write_text(SAMPLE_BUILD)
        git("add", "-A")
        git("commit", "-qm", "hello")
    return git("rev-parse", "HEAD")


def main() -> int:
    home = Path(default_home()).resolve()
    port = int(os.environ.get("GANTRY_API_PORT", "8000"))
    stack = Stack(home)
    print(f"== starting the local stack in {home} (redis, S3 per region, Ray nodes, actors, API)")
    cfg = stack.up(api_port=port)
    token = issue(cfg.jwt_secret(), "demo", admin=True)
    api = httpx.Client(base_url=cfg.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    repo = home / "sample-repo"
    sha = sample_repo(repo)
    print(f"== sample repository {repo} at {sha[:12]}")
    r = api.put("/projects/hello", json={"repoURL": str(repo)})
    print(f"PUT  /projects/hello -> {r.status_code}")
    r = api.post("/projects/hello/builds", json={"commitSHA": sha})
    build = r.json()
    print(f"POST /projects/hello/builds -> {r.status_code} {build}")

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
    print(f"== build {rec['buildStatus']}: artifact {rec['artifact']}")
    print(f"API        {cfg.api_url}   (token: {token})")
    print(f"dashboard  {cfg.dashboard_url}")
    print(f"The stack keeps running. Stop it with: make down   (or .venv/bin/gantry down --home {home})")
    return 0 if rec["buildStatus"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
