"""The stack's own Prometheus (the Debian `prometheus` package's server), on loopback, HTTPS with the
stack's certificate unless the stack is plain HTTP.

It finds what to scrape in files (Prometheus' file-based service discovery) under
<home>/prometheus/targets: `gantry-nodes.json`, every Ray node's metrics agent (gantry's own
metrics), rewritten whenever `up` starts a node; and `apps-*.json`, the apps that deployments
start on hosts (for canary analysis).
"""
from __future__ import annotations

import json
import shutil
import ssl
import urllib.request
from pathlib import Path

from gantry.artifacts.atomic import write_atomically
from gantry.cluster.processes import HOST, free_port, wait_for
from gantry.settings import Settings

NODES = "gantry-nodes.json"


def home_of(stack) -> Path:
    return stack.home / "prometheus"


def start_prometheus(stack, ca: str, cert: str, key: str) -> str:
    """Start it for `stack`; returns its URL."""
    d = home_of(stack)
    (d / "targets").mkdir(parents=True, exist_ok=True)
    apps = f"{Settings().prometheus_scrape_s:g}s"
    discover = lambda pattern: [{"files": [str(d / "targets" / pattern)], "refresh_interval": "5s"}]  # noqa: E731
    # Ray's own pages are large (thousands of series a node): at most every 15 s, whatever the apps need
    own = f"{max(15.0, Settings().prometheus_scrape_s):g}s"
    config = {"global": {"scrape_interval": own, "evaluation_interval": own},
              "scrape_configs": [{"job_name": "gantry", "file_sd_configs": discover("gantry-*.json")},
                                 {"job_name": "apps", "scrape_interval": apps, "scrape_timeout": apps,
                                  "file_sd_configs": discover("apps-*.json")}]}
    write_atomically(d / "prometheus.yml", json.dumps(config, indent=2).encode())   # JSON is YAML
    port = free_port()
    argv = [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address={HOST}:{port}",
            "--storage.tsdb.retention.time=15d", "--web.enable-lifecycle"]
    if cert:
        web = {"tls_server_config": {"cert_file": cert, "key_file": key}}
        write_atomically(d / "web.yml", json.dumps(web).encode())
        argv.append(f"--web.config.file={d / 'web.yml'}")
    stack._spawn("prometheus", argv, port=port)
    url = f"{'https' if cert else 'http'}://{HOST}:{port}"
    context = ssl.create_default_context(cafile=ca) if ca else None
    wait_for(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2, context=context).status == 200, 60,
             "Prometheus")
    return url


def write_node_targets(stack, ray_ip: str) -> None:
    """Every Ray node's metrics agent, as `up` recorded it, labelled with the node's name."""
    d = home_of(stack) / "targets"
    if not d.is_dir():
        return
    nodes = [{"targets": [f"{ray_ip}:{p['metrics_port']}"], "labels": {"gantry_node": name}}
             for name, p in sorted(stack.pids().items()) if p.get("metrics_port")]
    write_atomically(d / NODES, json.dumps(nodes, indent=1).encode())
