"""`gantry up/status/down/token` as a user runs them."""
import json
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import host_endpoint

from gantry.cluster.stack import Stack, free_port
from gantry.state import State
from helpers import wait_until

GANTRY = str(Path(sys.executable).parent / "gantry")


def gantry(*args, check=True):
    return subprocess.run([GANTRY, *args], capture_output=True, text=True, timeout=400, check=check)


def test_up_twice_is_safe_and_status_reports(stack):
    out = gantry("up", "--home", str(stack.home)).stdout
    assert "already running" in out
    status = json.loads(gantry("status", "--home", str(stack.home), "--json").stdout)
    assert status["running"] and status["apiHealthy"] and status["apiURL"] == stack.config().api_url
    assert status["dashboardURL"].startswith("https://127.0.0.1:") and status["caFile"] == stack.config().ca_file
    assert f"TLS        CA {stack.config().ca_file}" in gantry("status", "--home", str(stack.home)).stdout


def test_token_command_gives_a_working_token(stack):
    token = gantry("token", "--home", str(stack.home), "--user", "dana", "--project", "web").stdout.strip()
    r = httpx.get(stack.config().api_url + "/projects/web/builds", headers={"Authorization": f"Bearer {token}"},
                  verify=stack.config().http_verify())
    assert r.status_code == 404  # authorised for 'web', which is not registered
    r = httpx.get(stack.config().api_url + "/projects/api/builds", headers={"Authorization": f"Bearer {token}"},
                  verify=stack.config().http_verify())
    assert r.status_code == 403


def test_a_host_token_speaks_for_its_host_and_datacenter_only(stack):
    token = gantry("token", "--home", str(stack.home), "--host", "edge-1", "--dc", "eu-west-a").stdout.strip()
    body = {"hostID": "edge-1", "region": "eu-west", "address": "127.0.9.9:1", "projects": {}}
    url, auth = stack.config().api_url, {"Authorization": f"Bearer {token}"}
    with host_endpoint(stack, token, "eu-west-a") as coordinator:
        assert coordinator.post("/heartbeat", json=body).status_code == 200
        assert coordinator.post("/heartbeat", json={**body, "hostID": "edge-2"}).status_code == 403
    assert httpx.get(url + "/projects", headers=auth, verify=stack.config().http_verify()).status_code == 403   # the user API is not for hosts
    assert gantry("token", "--home", str(stack.home), "--host", "edge-1", check=False).returncode == 2


def test_host_add_starts_one_more_daemon_on_its_own_address(stack):
    out = gantry("host", "add", "--home", str(stack.home), "--region", "eu-west").stdout
    host_id = out.strip().splitlines()[-1]
    try:
        state = State(stack.config().redis_url)
        wait_until(lambda: (state.hosts.get("eu-west-a", host_id) or {}).get("dc") == "eu-west-a", 30, "the new host to report")
        ip = state.hosts.get("eu-west-a", host_id)["address"].rsplit(":", 1)[0]
        others = {h["address"].rsplit(":", 1)[0] for dc in ("us-east-a", "eu-west-a") for h in state.hosts.in_dc(dc)
                  if h["hostID"] != host_id}
        assert ip.startswith("127.0.") and ip not in others
        again = gantry("host", "add", "--home", str(stack.home), "--region", "eu-west", "--id", host_id, check=False)
        assert again.returncode == 2 and "already running" in again.stderr
        assert gantry("host", "add", "--home", str(stack.home), "--region", "mars", check=False).returncode == 2
    finally:
        removed = gantry("host", "remove", "--home", str(stack.home), host_id)
        assert removed.returncode == 0 and f"host-{host_id}" not in stack.pids()
    assert json.loads(gantry("status", "--home", str(stack.home), "--json").stdout)["running"]   # whole again


def test_second_stack_in_another_home_and_down_stops_only_it(stack, tmp_path):
    home, port = tmp_path / "second", free_port()
    gantry("up", "--home", str(home), "--api-port", str(port), "--regions", "solo", "--builders", "1",
           "--hosts-per-dc", "1")
    try:
        second = Stack(home).config()
        assert second.ca_file != stack.config().ca_file   # a stack of its own, with a CA of its own
        assert httpx.get(f"https://127.0.0.1:{port}/healthz", verify=second.http_verify()).json()["ok"] is True
        pids = json.loads((home / "pids.json").read_text())
    finally:
        gantry("down", "--home", str(home))
    for p in pids.values():
        assert not Path(f"/proc/{p['pid']}").exists() or "Z" in Path(f"/proc/{p['pid']}/stat").read_text().split(")")[-1][:3]
    assert stack.api_healthy()  # the first stack is untouched
    status = gantry("status", "--home", str(home), check=False)
    assert status.returncode == 1
