"""Chaos on the real stack: Redis down for 10 s while builds are queued and running (over three
times a build's lease in the tests, 3 s, and the API's 3 s ride-out).

What must hold: every build reaches a terminal state and none is lost (all 10 SUCCEED with no
manual step), the API says 503 with Retry-After while Redis is down, and no build-attempt actor
is left holding a builder once it is over."""
import signal
import time

import httpx
import ray

from gantry.constants import NAMESPACE, WORKER_PREFIX
from helpers import wait_build


def test_a_10s_redis_outage_costs_time_not_builds(api, stack, new_project):
    project, sha, _ = new_project("sleep 1; mkdir -p dist && echo ok > dist/f")
    builds = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(10)]
    deadline = time.monotonic() + 60
    while api.get(f"/projects/{project}/builds/{builds[0]}").json()["buildStatus"] == "QUEUED":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    stack.stop_process("redis", signal.SIGKILL)
    down_at = time.monotonic()
    answers = []
    while time.monotonic() - down_at < 10:
        r = api.get(f"/projects/{project}/builds")
        answers.append((r.status_code, r.headers.get("retry-after"), r.json()))
        time.sleep(1)
    health = httpx.get(f"{stack.config().api_url}/healthz", timeout=30, verify=stack.config().http_verify())
    stack.respawn("redis")
    assert health.status_code == 503 and health.json()["redis"] is False and health.json()["ray"] is True
    assert all(health.json()["stores"].values())

    assert answers and all(code == 503 for code, _, _ in answers), answers[:3]
    assert all(retry and float(retry) > 0 for _, retry, _ in answers)
    assert answers[0][2] == {"error": "unavailable", "detail": "state store unreachable"}
    final = [wait_build(api, project, b, timeout_s=420) for b in builds]
    assert [r["buildStatus"] for r in final] == ["SUCCEEDED"] * 10, [(r["buildStatus"], r.get("error")) for r in final]

    stack.connect()
    deadline = time.monotonic() + 60
    while True:   # the scheduler kills finished attempts, and reconciles orphans every 10 s
        left = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == NAMESPACE and a["name"].startswith(WORKER_PREFIX)]
        if not left:
            break
        assert time.monotonic() < deadline, f"attempt actors still alive: {left}"
        time.sleep(1)
