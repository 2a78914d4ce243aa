"""Issue 24: a host installs the agent alone. `.[node]` goes into a fresh venv with no Ray, and
that venv's `gantry-node` runs a real deployment against the stack."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_build, wait_until

REPO = Path(__file__).resolve().parents[2]
CONTROL_PLANE = ("ray", "boto3", "botocore", "redis", "pyarrow", "matplotlib", "fastapi", "jwt")


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Path:
    """A fresh venv with `pip install '<this checkout>[node]'`; returns its bin/."""
    tmp = tmp_path_factory.mktemp("agent")
    src = tmp / "src"   # a copy: pip builds in the tree it is given
    skip = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "test-artifacts", ".cache")
    shutil.copytree(REPO, src, ignore=lambda d, names: skip(d, names) | ({"build"} if Path(d) == REPO else set()))
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    bin_dir = tmp / "venv" / "bin"
    r = subprocess.run([str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", f"{src}[node]"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return bin_dir


def test_the_agent_installs_without_the_control_plane(agent):
    found = subprocess.run([str(agent / "python"), "-c", "import importlib.util as u, sys; "
                            f"print(','.join(m for m in {CONTROL_PLANE!r} if u.find_spec(m)))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "", f"the agent's install brought {found}"
    unit = subprocess.run([str(agent / "gantry-node"), "--print-unit"], capture_output=True, text=True, check=True)
    assert "ExecStart=/opt/gantry-node/bin/gantry-node" in unit.stdout
    cli = subprocess.run([str(agent / "gantry"), "up", "--home", str(agent.parent / "home")],
                         capture_output=True, text=True)
    assert cli.returncode != 0 and "gantry[stack]" in cli.stderr and "Traceback" not in cli.stderr


def test_the_ray_free_agent_runs_a_real_deployment(agent, api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && echo from-the-node-only-agent > dist/v")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    host = "us-east-a-agent"
    stack.start_host(host, "us-east", "us-east-a", projects=[project], agent=str(agent / "gantry-node"))
    try:
        wait_until(lambda: any(h["hostID"] == host for h in api.get(f"/projects/{project}/hosts").json()),
                   60, "the host to report")
        dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": {
            "steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}}).json()["deploymentID"]
        wait_until(lambda: api.get(f"/projects/{project}/deployments/{dep}").json()["status"] == "COMPLETED",
                   120, "the deployment")
        current = stack.home / "hosts" / host / "projects" / project / "current"
        assert (current / "v").read_text() == "from-the-node-only-agent\n"
        argv = Path(f"/proc/{stack.pids()[f'host-{host}']['pid']}/cmdline").read_bytes().split(b"\0")
        assert str(agent / "gantry-node").encode() in argv[:2]   # the agent that did it is the venv's
    finally:
        stack.remove_host(host)
