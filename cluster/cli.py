"""The `gantry` command: run and inspect the local stack, and issue API tokens."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gantry.cluster.stack import DEFAULT_REGIONS, Stack


def default_home() -> str:
    return os.environ.get("GANTRY_HOME", "./.gantry")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gantry", description="gantry: build, replicate and deploy commits")
    sub = ap.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="start the local multi-region stack in the background")
    up.add_argument("--home", default=default_home())
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--regions", default=",".join(DEFAULT_REGIONS),
                    help="comma-separated; the first is the primary region")
    up.add_argument("--builders", type=int, default=1)
    up.add_argument("--hosts-per-dc", type=int, default=4, help="node daemons per datacenter (one per region)")

    down = sub.add_parser("down", help="stop everything `up` started in this home")
    down.add_argument("--home", default=default_home())

    st = sub.add_parser("status", help="what is running, and where")
    st.add_argument("--home", default=default_home())
    st.add_argument("--json", action="store_true")

    tok = sub.add_parser("token", help="print an API token (JWT)")
    tok.add_argument("--home", default=default_home())
    tok.add_argument("--user", required=True)
    tok.add_argument("--project", action="append", default=[])
    tok.add_argument("--admin", action="store_true")

    srv = sub.add_parser("serve", help="on an existing Ray cluster (e.g. from ray-cluster.yaml): "
                                        "start the actors and the API")
    srv.add_argument("--stack-file", default=os.environ.get("GANTRY_STACK_FILE"), required=False)
    srv.add_argument("--address", default="auto", help="Ray address (default: the local cluster)")
    srv.add_argument("--api-host", default="0.0.0.0")
    srv.add_argument("--api-port", type=int, default=8000)

    a = ap.parse_args(argv)
    stack = Stack(a.home)
    if a.cmd == "up":
        regions = tuple(r.strip() for r in a.regions.split(",") if r.strip())
        if not regions or a.builders < 1:
            ap.error("need at least one region and one builder")
        stack.up(api_port=a.api_port, regions=regions, builders=a.builders, hosts_per_dc=a.hosts_per_dc)
        print(f"stop it with: gantry down --home {stack.home}")
    elif a.cmd == "down":
        stack.down()
    elif a.cmd == "status":
        s = stack.status()
        if a.json:
            print(json.dumps(s, indent=2))
        else:
            print(f"home       {s['home']}")
            print(f"running    {s['running']}  (API healthy: {s['apiHealthy']})")
            print(f"API        {s['apiURL']}")
            print(f"dashboard  {s['dashboardURL']}")
            print(f"regions    {', '.join(s['regions'])}")
            for name, alive in s["processes"].items():
                print(f"  {'up  ' if alive else 'DOWN'} {name}")
        return 0 if s["running"] else 1
    elif a.cmd == "serve":
        if not a.stack_file:
            ap.error("--stack-file or GANTRY_STACK_FILE is required")
        import ray

        from gantry.cluster.stack import deploy_services
        ray.init(address=a.address, namespace="gantry")
        deploy_services(str(Path(a.stack_file).resolve()), a.api_port, a.api_host)
        print(f"gantry actors and API started (port {a.api_port})")
    elif a.cmd == "token":
        secret_file = Path(stack.home) / "jwt.secret"
        if not secret_file.exists():
            print(f"no stack secret in {stack.home}; run `gantry up` first", file=sys.stderr)
            return 1
        from gantry.serve_app.auth import issue
        print(issue(secret_file.read_text().strip(), a.user, a.project, a.admin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
