"""The stack's own Prometheus (issue 25): a real server on loopback, HTTPS with the stack's CA,
that finds every Ray node by file-based service discovery and scrapes gantry's own metrics."""
import json
import time

import httpx


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
    deadline, up, builds = time.monotonic() + 90, [], []
    while time.monotonic() < deadline:
        up = query(stack, 'up{job="gantry"}')
        builds = query(stack, "ray_gantry_builds")
        if len(up) == len(nodes) and all(u["value"][1] == "1" for u in up) and builds:
            break
        time.sleep(2)
    assert len(up) == len(nodes) and all(u["value"][1] == "1" for u in up), up
    assert builds and {b["metric"]["gantry_node"] for b in builds} == {"ray-head"}, builds
    assert cfg.prometheus_url.startswith("https://127.0.0.1:")
    assert stack.status()["prometheusURL"] == cfg.prometheus_url
