"""The `gantry` command: run the local stack, and every API action against any gantry.

Endpoint and token come from --url/--token, else GANTRY_URL/GANTRY_TOKEN, else the local stack
in --home (whose secret mints an admin token). Reads take --json. `--wait` follows a build or a
deployment live and exits 0 only when it SUCCEEDED / COMPLETED.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from gantry.cluster.stack import DEFAULT_REGIONS, Stack
from gantry.statuses import BuildStatus, DeploymentStatus

EXIT_FAILED, EXIT_API = 1, 2


def default_home() -> str:
    return os.environ.get("GANTRY_HOME", "./.gantry")


def _stack_commands(sub) -> None:
    up = sub.add_parser("up", help="start the local multi-region stack in the background")
    up.add_argument("--home", default=default_home())
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--regions", default=",".join(DEFAULT_REGIONS),
                    help="comma-separated; the first is the primary region")
    up.add_argument("--builders", type=int, default=1)
    up.add_argument("--hosts-per-dc", type=int, default=4, help="node daemons per datacenter (one per region)")

    down = sub.add_parser("down", help="stop everything `up` started in this home")
    down.add_argument("--home", default=default_home())

    tok = sub.add_parser("token", help="print an API token (JWT) signed with the local stack's secret")
    tok.add_argument("--home", default=default_home())
    tok.add_argument("--user", required=True)
    tok.add_argument("--project", action="append", default=[])
    tok.add_argument("--admin", action="store_true")
    tok.add_argument("--rate", type=float, help="this user's own requests per second")
    tok.add_argument("--burst", type=float, help="with --rate: the bucket's size")

    srv = sub.add_parser("serve", help="on an existing Ray cluster (e.g. from ray-cluster.yaml): "
                                        "start the actors and the API")
    srv.add_argument("--stack-file", default=os.environ.get("GANTRY_STACK_FILE"), required=False)
    srv.add_argument("--address", default="auto", help="Ray address (default: the local cluster)")
    srv.add_argument("--api-host", default="0.0.0.0")
    srv.add_argument("--api-port", type=int, default=8000)


def _api_commands(sub) -> None:
    def cmd(name, help, json_out=False, **kw):
        p = sub.add_parser(name, help=help, **kw)
        p.add_argument("--url", default=os.environ.get("GANTRY_URL"), help="API URL (env GANTRY_URL)")
        p.add_argument("--token", default=os.environ.get("GANTRY_TOKEN"), help="API token (env GANTRY_TOKEN)")
        p.add_argument("--home", default=default_home(), help="local stack to use when no URL/token is given")
        if json_out:
            p.add_argument("--json", action="store_true", help="print the API's JSON")
        return p

    st = cmd("status", "the local stack's status, or with PROJECT BUILD a build's", json_out=True)
    st.add_argument("project", nargs="?")
    st.add_argument("build", nargs="?")

    proj = cmd("project", "register or show projects", json_out=True)
    proj.add_argument("action", choices=["add", "list", "show"])
    proj.add_argument("name", nargs="?")
    proj.add_argument("repo", nargs="?", help="repository URL or absolute path (add)")
    proj.add_argument("--webhook-secret")
    proj.add_argument("--default-branch")
    proj.add_argument("--coalesce", action=argparse.BooleanOptionalAction, default=None)
    proj.add_argument("--rate", type=float, help="writes per second for the project")
    proj.add_argument("--burst", type=int, help="with --rate")

    b = cmd("build", "queue a build of a commit", json_out=True)
    b.add_argument("project")
    b.add_argument("sha")
    b.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    b.add_argument("--priority", type=int)
    b.add_argument("--wait", action="store_true", help="follow it live; exit 0 only if it SUCCEEDED")

    bs = cmd("builds", "list a project's builds, newest first", json_out=True)
    bs.add_argument("project")
    bs.add_argument("--limit", type=int, default=20)
    bs.add_argument("--cursor")

    lg = cmd("logs", "print a build's log")
    lg.add_argument("project")
    lg.add_argument("build")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the build ends")

    c = cmd("cancel", "cancel a build", json_out=True)
    c.add_argument("project")
    c.add_argument("build")

    rp = cmd("replicate", "replication of a build: --retry starts again the regions that gave up", json_out=True)
    rp.add_argument("project")
    rp.add_argument("build")
    rp.add_argument("--retry", action="store_true", required=True)

    d = cmd("deploy", "roll a SUCCEEDED (or DEPLOYING) build out to every host", json_out=True)
    d.add_argument("project")
    d.add_argument("build")
    d.add_argument("--steps", help="waves, e.g. 1,0.1,0.5,1.0 (host counts or fractions)")
    d.add_argument("--bake", type=float, help="seconds to watch each wave before the next")
    d.add_argument("--min-healthy", type=float)
    d.add_argument("--wait", action="store_true", help="follow it live; exit 0 only if it COMPLETED")

    ds = cmd("deployments", "list a project's deployments, or show one", json_out=True)
    ds.add_argument("project")
    ds.add_argument("deployment", nargs="?")
    ds.add_argument("--limit", type=int, default=20)
    ds.add_argument("--cursor")

    for name, help in (("pause", "pause a deployment"), ("resume", "resume a paused deployment"),
                       ("abort", "abort a deployment")):
        p = cmd(name, help, json_out=True)
        p.add_argument("project")
        p.add_argument("deployment")

    rb = cmd("rollback", "deploy the previous good build (or --build) in one wave", json_out=True)
    rb.add_argument("project")
    rb.add_argument("--build")
    rb.add_argument("--wait", action="store_true")

    h = cmd("hosts", "the hosts and what they run", json_out=True)
    h.add_argument("project")

    a = cmd("audit", "who did what (admin)", json_out=True)
    a.add_argument("--project")
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--cursor")

    ar = cmd("archive", "move finished builds older than --older-than seconds to the archive now (admin)",
             json_out=True)
    ar.add_argument("--older-than", type=float)


def client_for(a):
    from gantry.client import HttpClient
    from gantry.serve_app.auth import issue
    url, token = a.url, a.token
    if not url or not token:
        stack = Stack(a.home)
        if not stack.stack_file.exists():
            raise SystemExit(f"no gantry to talk to: pass --url and --token, set GANTRY_URL and GANTRY_TOKEN, "
                             f"or start a local stack (gantry up --home {a.home})")
        url = url or stack.config().api_url
        token = token or issue(stack.config().jwt_secret(), f"local:{getpass.getuser()}", admin=True)
    return HttpClient(url, token)


def _print(a, value, text: str | None = None) -> None:
    if getattr(a, "json", False) or text is None:
        data = [v.model_dump() for v in value] if isinstance(value, list) else value.model_dump()
        print(json.dumps(data, indent=2))
    else:
        print(text)


def _table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header)] + [line(r) for r in rows])


def _strategy(a) -> dict | None:
    s = {}
    if a.steps:
        s["steps"] = [float(x) if "." in x else int(x) for x in a.steps.split(",")]
    if a.bake is not None:
        s["bakeS"] = a.bake
    if a.min_healthy is not None:
        s["minHealthy"] = a.min_healthy
    return s or None


def _maybe_wait(a, accepted, text: str, watch, succeeded) -> int:
    """Print what was accepted, or with --wait follow it to its end: exit 0 only on success."""
    if not a.wait:
        _print(a, accepted, text)
        return 0
    final = watch()
    if a.json:
        _print(a, final)
    return 0 if succeeded(final) else EXIT_FAILED


def run_api(a) -> int:
    from rich.console import Console

    from gantry.cluster import progress
    c, console = client_for(a), Console()
    if a.cmd == "status":
        b = c.get_build(a.project, a.build)
        _print(a, b, _table([[b.buildID, b.buildStatus, b.commitSHA[:12], b.createdAt, b.finishedAt or "",
                              b.error or ""]], ["BUILD", "STATUS", "COMMIT", "CREATED", "FINISHED", "ERROR"]))
    elif a.cmd == "project":
        if a.action == "list":
            ps = c.projects()
            _print(a, ps, _table([[p.projectName, p.repoURL, p.defaultBranch, p.webhookConfigured] for p in ps],
                                 ["PROJECT", "REPO", "BRANCH", "WEBHOOK"]))
        elif not a.name or (a.action == "add" and not a.repo):
            raise SystemExit("usage: gantry project add NAME REPO | gantry project show NAME")
        elif a.action == "show":
            _print(a, c.project(a.name))
        else:
            if (a.rate is None) != (a.burst is None):
                raise SystemExit("--rate and --burst go together")
            p = c.register(a.name, a.repo, webhook_secret=a.webhook_secret, default_branch=a.default_branch,
                           coalesce=a.coalesce, rate_limit=(a.rate, a.burst) if a.rate else None)
            _print(a, p, f"project {p.projectName} registered; GitHub webhook URL path: {p.webhookPath}")
    elif a.cmd == "build":
        env = dict(kv.split("=", 1) for kv in a.env if "=" in kv)
        acc = c.build(a.project, a.sha, env=env or None, priority=a.priority)
        return _maybe_wait(a, acc, f"build {acc.buildID} {acc.buildStatus}",
                           lambda: progress.watch_build(c, a.project, acc.buildID, console),
                           lambda b: b.buildStatus == BuildStatus.SUCCEEDED)
    elif a.cmd == "builds":
        page = c.builds(a.project, a.limit, a.cursor)
        text = _table([[b.buildID, b.buildStatus, b.commitSHA[:12], b.createdAt] for b in page.builds],
                      ["BUILD", "STATUS", "COMMIT", "CREATED"])
        _print(a, page, text + (f"\nmore: --cursor {page.nextCursor}" if page.nextCursor else ""))
    elif a.cmd == "logs":
        if a.follow:
            for chunk in c.follow_logs(a.project, a.build):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        else:
            offset = 0
            while True:
                chunk = c.logs(a.project, a.build, offset)
                sys.stdout.write(chunk.data)
                if not chunk.data:
                    break
                offset = chunk.nextOffset
    elif a.cmd == "cancel":
        b = c.cancel(a.project, a.build)
        _print(a, b, f"build {b.buildID} {b.buildStatus}")
    elif a.cmd == "replicate":
        b = c.retry_replication(a.project, a.build)
        _print(a, b, f"build {b.buildID} {b.buildStatus}: " + ", ".join(
            f"{r.region} {r.replicationStatus}" for r in b.replication))
    elif a.cmd in ("deploy", "rollback"):
        acc = c.deploy(a.project, a.build, _strategy(a)) if a.cmd == "deploy" else c.rollback(a.project, a.build)
        return _maybe_wait(a, acc, f"deployment {acc.deploymentID} of build {acc.buildID} {acc.status}",
                           lambda: progress.watch_deployment(c, a.project, acc.deploymentID, console),
                           lambda d: d.status == DeploymentStatus.COMPLETED)
    elif a.cmd == "deployments":
        if a.deployment:
            d = c.deployment(a.project, a.deployment)
            if a.json:
                _print(a, d)
            else:
                console.print(progress.deployment_view(d))
        else:
            page = c.deployments(a.project, a.limit, a.cursor)
            text = _table([[d.deploymentID, d.status, d.buildID[:12], d.createdAt, d.createdBy] for d in page.deployments],
                          ["DEPLOYMENT", "STATUS", "BUILD", "CREATED", "BY"])
            _print(a, page, text + (f"\nmore: --cursor {page.nextCursor}" if page.nextCursor else ""))
    elif a.cmd in ("pause", "resume", "abort"):
        d = getattr(c, a.cmd)(a.project, a.deployment)
        _print(a, d, f"deployment {d.deploymentID} {d.status}")
    elif a.cmd == "hosts":
        hs = c.hosts(a.project)
        _print(a, hs, _table([[h.hostID, h.region, h.dc, h.state, (h.activeBuildID or "")[:12], h.error or ""]
                              for h in hs], ["HOST", "REGION", "DC", "STATE", "BUILD", "ERROR"]))
    elif a.cmd == "audit":
        page = c.audit(a.project, a.limit, a.cursor)
        text = _table([[e.at, e.user, e.action, e.project or "", e.target or ""] for e in page.entries],
                      ["AT", "USER", "ACTION", "PROJECT", "TARGET"])
        _print(a, page, text + (f"\nmore: --cursor {page.nextCursor}" if page.nextCursor else ""))
    elif a.cmd == "archive":
        r = c.archive(a.older_than)
        _print(a, r, f"archived: {r.moved or 'nothing'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gantry", description="gantry: build, replicate and deploy commits")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _stack_commands(sub)
    _api_commands(sub)
    a = ap.parse_args(argv)
    if a.cmd == "status" and a.project is None:
        return stack_status(Stack(a.home), a.json)
    if a.cmd == "status" and a.build is None:
        ap.error("status takes no argument (the stack) or PROJECT BUILD")
    if a.cmd not in ("up", "down", "token", "serve"):
        from gantry.client import GantryError
        try:
            return run_api(a)
        except GantryError as e:
            print(json.dumps({"status": e.status, "error": e.error, "detail": e.detail}), file=sys.stderr)
            return EXIT_API
    stack = Stack(a.home) if hasattr(a, "home") else None
    if a.cmd == "up":
        regions = tuple(r.strip() for r in a.regions.split(",") if r.strip())
        if not regions or a.builders < 1:
            ap.error("need at least one region and one builder")
        stack.up(api_port=a.api_port, regions=regions, builders=a.builders, hosts_per_dc=a.hosts_per_dc)
        print(f"stop it with: gantry down --home {stack.home}")
    elif a.cmd == "down":
        stack.down()
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
        if (a.rate is None) != (a.burst is None):
            ap.error("--rate and --burst go together")
        from gantry.serve_app.auth import issue
        print(issue(secret_file.read_text().strip(), a.user, a.project, a.admin,
                    rate=(a.rate, a.burst) if a.rate else None))
    return 0


def stack_status(stack: Stack, as_json: bool) -> int:
    s = stack.status()
    if as_json:
        print(json.dumps(s, indent=2))
    else:
        print(f"home       {s['home']}")
        print(f"running    {s['running']}  (API healthy: {s['apiHealthy']})")
        print(f"API        {s['apiURL']}")
        print(f"dashboard  {s['dashboardURL']}")
        print(f"Ray        {s['rayDashboardURL']}")
        print(f"metrics    {s['metricsURL']}")
        print(f"regions    {', '.join(s['regions'])}")
        for name, alive in s["processes"].items():
            print(f"  {'up  ' if alive else 'DOWN'} {name}")
    return 0 if s["running"] else 1


if __name__ == "__main__":
    sys.exit(main())
