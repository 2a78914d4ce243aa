"""`gantry up/status/down/token` as a user runs them."""
import json
import subprocess
import sys
from pathlib import Path

import httpx

from gantry.cluster.stack import free_port

GANTRY = str(Path(sys.executable).parent / "gantry")


def gantry(*args, check=True):
    return subprocess.run([GANTRY, *args], capture_output=True, text=True, timeout=400, check=check)


def test_up_twice_is_safe_and_status_reports(stack):
    out = gantry("up", "--home", str(stack.home)).stdout
    assert "already running" in out
    status = json.loads(gantry("status", "--home", str(stack.home), "--json").stdout)
    assert status["running"] and status["apiHealthy"] and status["apiURL"] == stack.config().api_url
    assert status["dashboardURL"].startswith("http://127.0.0.1:")


def test_token_command_gives_a_working_token(stack):
    token = gantry("token", "--home", str(stack.home), "--user", "dana", "--project", "web").stdout.strip()
    r = httpx.get(stack.config().api_url + "/projects/web/builds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404  # authorised for 'web', which is not registered
    r = httpx.get(stack.config().api_url + "/projects/api/builds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_second_stack_in_another_home_and_down_stops_only_it(stack, tmp_path):
    home, port = tmp_path / "second", free_port()
    gantry("up", "--home", str(home), "--api-port", str(port), "--regions", "solo", "--builders", "1")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["ok"] is True
        pids = json.loads((home / "pids.json").read_text())
    finally:
        gantry("down", "--home", str(home))
    for p in pids.values():
        assert not Path(f"/proc/{p['pid']}").exists() or "Z" in Path(f"/proc/{p['pid']}/stat").read_text().split(")")[-1][:3]
    assert stack.api_healthy()  # the first stack is untouched
    status = gantry("status", "--home", str(home), check=False)
    assert status.returncode == 1
