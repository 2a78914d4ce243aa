"""The stack's own Prometheus (issue 25): a real server on loopback, HTTPS with the stack's CA,
that finds every Ray node by file-based service discovery and scrapes gantry's own metrics."""
import json
import time

import httpx

from gantry.cluster.processes import alive


def query(stack, promql: str) -> list[dict]:
    cfg = stack.config()
    r = httpx.get(f"{cfg.prometheus_url}/api/v1/query", params={"query": promql}, verify=cfg.ca_file, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def test_the_stacks_prometheus_scrapes_every_ray_node_and_gantrys_own_metrics(stack, api):
    cfg = stack.config()
    nodes = json.loads((stack.home / "prometheus" / "targets" / "gantry-nodes.json").read_text())
    names = {t["labels"]["gantry_node"] for t in nodes}
    assert {"ray-head", "ray-region-us-east", "ray-region-eu-west"} <= names and any("builder" in n for n in names)
    # a node an earlier test killed on this shared stack stays a target, and is down
    running = {name for name, p in stack.pids().items() if p.get("metrics_port") and alive(p["pid"])}
    assert "ray-head" in running

    def up_nodes():
        return {u["metric"]["gantry_node"] for u in query(stack, 'up{job="gantry"}') if u["value"][1] == "1"}
    deadline, up, builds = time.monotonic() + 90, set(), []
    while time.monotonic() < deadline:
        up, builds = up_nodes(), query(stack, "ray_gantry_builds")
        if running <= up and builds:
            break
        time.sleep(2)
    assert running <= up, (running, up)
    assert builds and {b["metric"]["gantry_node"] for b in builds} == {"ray-head"}, builds
    assert cfg.prometheus_url.startswith("https://127.0.0.1:")
    assert stack.status()["prometheusURL"] == cfg.prometheus_url
