"""The `gantry` command: run the local stack, and every API action against any gantry.

Endpoint and token come from --url/--token, else GANTRY_URL/GANTRY_TOKEN, else the local stack
in --home (whose secret mints an admin token). Reads take --json. `--wait` follows a build or a
deployment live and exits 0 only when it SUCCEEDED / COMPLETED.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from gantry.client import GantryError
from gantry.cluster import analysis_cli, commands, freeze_cli
from gantry.cluster.commands import EXIT_API, UsageError
from gantry.cluster.shape import DEFAULT_REGIONS
from gantry.cluster.stack import Stack
from gantry.sim import cli as sim_cli

CONTROL_PLANE = ("ray", "redis", "boto3", "jwt", "cryptography")   # what `gantry up`, `serve` and `token` need beyond the agent's install


def default_home() -> str:
    return os.environ.get("GANTRY_HOME", "./.gantry")


def _stack_commands(sub) -> None:
    up = sub.add_parser("up", help="start the local multi-region stack in the background; in a home that ran "
                                   "one, the same stack again (each flag given overrides what it recorded)")
    up.add_argument("--home", default=default_home())
    up.add_argument("--api-port", type=int, help="default 8000")
    up.add_argument("--regions", help=f"comma-separated; the first is the primary region (default {','.join(DEFAULT_REGIONS)})")
    up.add_argument("--builders", type=int, help="builder nodes (default 1)")
    up.add_argument("--builder-cpus", type=float,
                    help="cpus each builder offers builds: it runs as many at once as their cpus and memory fit (default 1)")
    up.add_argument("--builder-memory-mb", type=int,
                    help="memory each builder offers builds (default: the cpus times a default build's memory)")
    up.add_argument("--hosts-per-dc", type=int, help="node daemons per datacenter (one per region; default 4)")
    up.add_argument("--insecure-plain-http", action=argparse.BooleanOptionalAction, default=None,
                    help="no TLS anywhere: tokens and peer credentials cross the network readable (default: TLS "
                         "with the stack's own CA in <home>/tls)")
    up.set_defaults(func=up_stack)

    down = sub.add_parser("down", help="stop everything `up` started in this home")
    down.add_argument("--home", default=default_home())
    down.set_defaults(func=lambda a: Stack(a.home).down())

    tok = sub.add_parser("token", help="print an API token (JWT) signed with the local stack's secret")
    tok.add_argument("--home", default=default_home())
    tok.add_argument("--user", help="whose token (a user's); or --host and --dc for a node daemon's")
    tok.add_argument("--host", help="a node daemon's token: it may report only as this host...")
    tok.add_argument("--dc", help="...to this datacenter's coordinator")
    tok.add_argument("--project", action="append", default=[],
                     help="a project the token is for (repeatable); with --host, the projects the host may serve "
                          "(none: every project)")
    tok.add_argument("--admin", action="store_true")
    tok.add_argument("--role", action="append", default=[], choices=["deployer"],
                     help="a role (repeatable): a deployer may approve deployments and override freeze windows")
    tok.add_argument("--rate", type=float, help="this user's own requests per second")
    tok.add_argument("--burst", type=float, help="with --rate: the bucket's size")
    tok.set_defaults(func=token)

    host = sub.add_parser("host", help="hosts of the local stack").add_subparsers(dest="action", required=True)
    add = host.add_parser("add", help="start one more node daemon; prints its host ID last")
    add.add_argument("--home", default=default_home())
    add.add_argument("--region", required=True)
    add.add_argument("--dc", help="its datacenter (default: the region's first)")
    add.add_argument("--id", dest="host_id", help="its host ID (default: <dc>-h<next free number>)")
    add.add_argument("--project", action="append", default=[], dest="projects",
                     help="a project it serves (repeatable; none: every project)")
    add.add_argument("--print", action="store_true", dest="print_only",
                     help="start nothing: print the commands that install the agent on a real host (needs --id)")
    add.add_argument("--api", help="with --print: the API's URL as the host reaches it (default: the stack's)")
    add.add_argument("--listen", default="0.0.0.0:7070", help="with --print: the host's peer server ADDR:PORT")
    add.add_argument("--advertise", help="with --print: ADDR:PORT other hosts reach it at (default: <id>:<port>)")
    add.add_argument("--source", help="with --print: where pip gets gantry (default: this checkout)")
    add.set_defaults(func=add_host)
    remove = host.add_parser("remove", help="stop a host's daemon and take it out of the stack")
    remove.add_argument("--home", default=default_home())
    remove.add_argument("host_id")
    remove.set_defaults(func=remove_host)

    srv = sub.add_parser("serve", help="on an existing Ray cluster (e.g. from ray-cluster.yaml): "
                                        "start the actors and the API")
    srv.add_argument("--stack-file", default=os.environ.get("GANTRY_STACK_FILE"), required=False)
    srv.add_argument("--address", default="auto", help="Ray address (default: the local cluster)")
    srv.add_argument("--api-host", default="0.0.0.0")
    srv.add_argument("--api-port", type=int, default=8000)
    srv.set_defaults(func=serve)

    sim = sub.add_parser("simulate", help="simulate a deployment over a fleet with gantry's own policies (no I/O)")
    sim_cli.add_arguments(sim)
    sim.set_defaults(func=sim_cli.run)


def _api_commands(sub) -> None:
    def cmd(name, help, func, json_out=False, **kw):
        p = sub.add_parser(name, help=help, **kw)
        p.set_defaults(func=func)
        p.add_argument("--url", default=os.environ.get("GANTRY_URL"), help="API URL (env GANTRY_URL)")
        p.add_argument("--token", default=os.environ.get("GANTRY_TOKEN"), help="API token (env GANTRY_TOKEN)")
        p.add_argument("--ca", default=os.environ.get("GANTRY_CA"),
                       help="the CA file the API's certificate is checked against (env GANTRY_CA; default: "
                            "the local stack's, else the system's roots)")
        p.add_argument("--home", default=default_home(), help="local stack to use when no URL/token is given")
        if json_out:
            p.add_argument("--json", action="store_true", help="print the API's JSON")
        return p

    st = cmd("status", "the local stack's status, or with PROJECT BUILD a build's", commands.status, json_out=True)
    st.add_argument("project", nargs="?")
    st.add_argument("build", nargs="?")

    proj = cmd("project", "register or show projects", commands.project, json_out=True)
    proj.add_argument("action", choices=["add", "list", "show"])
    proj.add_argument("name", nargs="?")
    proj.add_argument("repo", nargs="?", help="repository URL or absolute path (add)")
    proj.add_argument("--webhook-secret")
    proj.add_argument("--default-branch")
    proj.add_argument("--coalesce", action=argparse.BooleanOptionalAction, default=None)
    proj.add_argument("--rate", type=float, help="writes per second for the project")
    proj.add_argument("--burst", type=int, help="with --rate")
    proj.add_argument("--prestage", action=argparse.BooleanOptionalAction, default=None,
                      help="stage each build on the project's hosts as soon as it succeeds")
    rt = proj.add_argument_group("retention (each flag changes only what it names)")
    rt.add_argument("--keep-last", type=int, help="successful builds kept whatever else holds (default 20)")
    rt.add_argument("--keep-deployed-days", type=float, help="a build deployed this recently is kept (default 30)")
    rt.add_argument("--cache-unused-days", type=float, help="a build cache unused this long goes (default 14)")
    rt.add_argument("--cache-max-bytes", type=int, help="the project's caches, least recently used go first past this")
    bs = proj.add_argument_group("build settings, for commits without a gantry.toml (any of them replaces "
                                 "the project's build settings; the file's keys win where it has one)")
    bs.add_argument("--build-command", help="sh -c, in the checkout, with no network")
    bs.add_argument("--output", help="the directory that becomes the artifact")
    bs.add_argument("--timeout", type=float, help="seconds, fetch and build together")
    bs.add_argument("--fetch", help="runs before the build, with network only to --egress-allow hosts")
    bs.add_argument("--cache", action="append", help="a path kept between builds (in the checkout, or ~/...)")
    bs.add_argument("--cpus", type=float)
    bs.add_argument("--memory-mb", type=int)
    bs.add_argument("--submodules", action=argparse.BooleanOptionalAction, default=None)
    bs.add_argument("--start", help="deploy hook: run on a host after it switches to the release")
    bs.add_argument("--health", help="deploy hook: the host's health check")
    bs.add_argument("--egress-allow", action="append", help="host or host:port the fetch step may reach")
    gf = proj.add_argument_group("gates and feedback (each flag changes only what it names)")
    gf.add_argument("--auto-deploy", action=argparse.BooleanOptionalAction, default=None,
                    help="each build of the default branch that succeeds deploys itself")
    gf.add_argument("--during-freeze", choices=["refuse", "wait"], help="a deploy inside a freeze window: 409, or queued")
    gf.add_argument("--concurrency", choices=["queue", "supersede", "reject"], help="a deploy while one is under way")
    gf.add_argument("--notifications", metavar="FILE.json", help="the subscriptions (a JSON list; replaces them)")
    gf.add_argument("--github", metavar="OWNER/REPO", help="report builds and deployments to this repository "
                    "(with --github-token; \"\" turns it off)")
    gf.add_argument("--github-token", help="a token that may write statuses and deployments (never shown)")
    gf.add_argument("--github-api", default="https://api.github.com", help="GitHub Enterprise: https://HOST/api/v3")
    gf.add_argument("--github-environment", default="production", help="the Deployments' environment")

    b = cmd("build", "queue a build of a commit", commands.build, json_out=True)
    b.add_argument("project")
    b.add_argument("sha")
    b.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    b.add_argument("--priority", type=int)
    b.add_argument("--wait", action="store_true", help="follow it live; exit 0 only if it SUCCEEDED")

    bs = cmd("builds", "list a project's builds, newest first", commands.builds, json_out=True)
    bs.add_argument("project")
    bs.add_argument("--limit", type=int, default=20)
    bs.add_argument("--cursor")

    lg = cmd("logs", "print a build's log", commands.logs)
    lg.add_argument("project")
    lg.add_argument("build")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the build ends")

    c = cmd("cancel", "cancel a build", commands.cancel, json_out=True)
    c.add_argument("project")
    c.add_argument("build")

    rp = cmd("replicate", "replication of a build: --retry starts again the regions that gave up", commands.replicate,
             json_out=True)
    rp.add_argument("project")
    rp.add_argument("build")
    rp.add_argument("--retry", action="store_true", required=True)

    d = cmd("deploy", "roll a SUCCEEDED (or DEPLOYING) build out to every host", commands.deploy, json_out=True)
    d.add_argument("project")
    d.add_argument("build")
    d.add_argument("--steps", help="waves, e.g. 1,0.1,0.5,1.0 (host counts or fractions)")
    d.add_argument("--bake", type=float, help="seconds to watch each wave before the next")
    d.add_argument("--min-healthy", type=float)
    d.add_argument("--stage", choices=["all", "wave"],
                   help="all (default): stage everywhere first, waves only activate; wave: each wave downloads")
    d.add_argument("--region-waves", metavar="R1;R2,R3",
                   help="regions that activate together, wave after wave (default: the first region, then the rest)")
    d.add_argument("--approve-before", action="append", metavar="GATE", help="an approval gate (repeatable): "
                   "wave:N or regionWave:N; the deployment waits there until `gantry deploy approve`")
    d.add_argument("--approvals", type=int, default=1, help="with --approve-before: different people needed (default 1)")
    d.add_argument("--not-requester", action="store_true", help="with --approve-before: you may not approve it yourself")
    d.add_argument("--wait", action="store_true", help="follow it live; exit 0 only if it COMPLETED")
    d.add_argument("--dry-run", action="store_true", help="predict how long it would take (simulated); deploy nothing")
    d.add_argument("--override-freeze", metavar="REASON", help="deploy inside a freeze window (admins), saying why")

    ds = cmd("deployments", "list a project's deployments, or show one", commands.deployments, json_out=True)
    ds.add_argument("project")
    ds.add_argument("deployment", nargs="?")
    ds.add_argument("--limit", type=int, default=20)
    ds.add_argument("--cursor")

    for name, help in (("pause", "pause a deployment"), ("resume", "resume a paused deployment"),
                       ("abort", "abort a deployment")):
        p = cmd(name, help, commands.deployment_op, json_out=True)
        p.add_argument("project")
        p.add_argument("deployment")

    ap_ = cmd("deploy-approve", "approve the gate a deployment waits at (also `gantry deploy approve P D`)",
              commands.approve, json_out=True)
    ap_.add_argument("project")
    ap_.add_argument("deployment")
    ap_.add_argument("--comment", help="recorded with the approval in the audit log")

    rb = cmd("rollback", "deploy the previous good build (or --build) in one wave", commands.deploy, json_out=True)
    rb.add_argument("project")
    rb.add_argument("--build")
    rb.add_argument("--wait", action="store_true")

    nt = cmd("notifications", "a project's newest notifications and how each delivery went", commands.notifications,
             json_out=True)
    nt.add_argument("project")
    nt.add_argument("--limit", type=int, default=20)

    h = cmd("hosts", "the hosts and what they run", commands.hosts, json_out=True)
    h.add_argument("project")

    a = cmd("audit", "who did what (admin)", commands.audit, json_out=True)
    a.add_argument("--project")
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--cursor")

    for name, pinned, help in (("pin", True, "pin a build: retention keeps it (also `gantry build pin`)"),
                               ("unpin", False, "unpin a build: its project's retention decides again")):
        pn = cmd(name, help, commands.pin, json_out=True)
        pn.add_argument("project")
        pn.add_argument("build")
        pn.set_defaults(pinned=pinned)

    g = cmd("gc", "garbage collection now (admin): expire what retention lets go, sweep every store",
            commands.gc, json_out=True)
    g.add_argument("--dry-run", action="store_true", help="say what would go and why; change nothing")
    g.add_argument("--grace", type=float, help="seconds: objects written more recently stay (default: the stack's)")
    g.add_argument("--last", action="store_true", help="show the last pass's report instead")

    analysis_cli.add_commands(cmd)
    freeze_cli.add_commands(cmd)

    ar = cmd("archive", "move finished builds older than --older-than seconds to the archive now (admin)",
             commands.archive, json_out=True)
    ar.add_argument("--older-than", type=float)


def up_stack(a) -> int:
    regions = tuple(r.strip() for r in a.regions.split(",") if r.strip()) if a.regions is not None else None
    if regions == () or (a.builders is not None and a.builders < 1) or (a.builder_cpus is not None and a.builder_cpus <= 0) \
            or (a.builder_memory_mb is not None and a.builder_memory_mb < 0) or (a.hosts_per_dc or 0) < 0:
        raise UsageError("need at least one region and one builder, with cpus above 0")
    stack = Stack(a.home)
    try:
        stack.up(api_port=a.api_port, regions=regions, builders=a.builders, hosts_per_dc=a.hosts_per_dc,
                 builder_cpus=a.builder_cpus, builder_memory_mb=a.builder_memory_mb, plain_http=a.insecure_plain_http)
    except ValueError as e:   # a shape.json that says nothing usable
        raise UsageError(str(e))
    print(f"stop it with: gantry down --home {stack.home}")
    return 0


def add_host(a) -> int:
    stack = Stack(a.home)
    if not stack.stack_file.exists():
        raise UsageError(f"no local stack in {a.home}; start one with gantry up")
    if a.print_only:
        return print_host_install(stack, a)
    try:
        host_id = stack.add_host(a.region, a.dc, a.host_id, a.projects)
    except ValueError as e:
        raise UsageError(str(e))
    print(f"host {host_id} started in {a.region}; stop it with the stack: gantry down --home {stack.home}")
    print(host_id)
    return 0


def print_host_install(stack: Stack, a) -> int:
    from gantry.auth import issue_host
    from gantry.cluster.certs import StackCA
    from gantry.cluster.hostinstall import default_source, install_commands
    from gantry.tls import check_url
    cfg = stack.config()
    if not a.host_id:
        raise UsageError("--print needs --id: the real host's ID")
    if cfg.plain_http:
        raise UsageError("this stack runs plain HTTP (--insecure-plain-http): a real host's token would cross the "
                         "network readable; start it with TLS (gantry up --no-insecure-plain-http)")
    advertise = a.advertise or f"{a.host_id}:{a.listen.rsplit(':', 1)[-1]}"
    try:
        dc = cfg.datacenter(a.region, a.dc)
        api = check_url(a.api or cfg.api_url, "--api", plain_ok=False)
        token = issue_host(cfg.jwt_secret(), a.host_id, dc, a.projects or None)
        ca = StackCA(Path(cfg.ca_file).parent)   # the host's certificate names the address peers reach it at
        cert, key = ca.issue(f"host-{a.host_id}", [advertise.rsplit(":", 1)[0]])
        print(install_commands(a.host_id, a.region, dc, api, token, a.listen, advertise, a.source or default_source(),
                               ca.ca_file.read_text(), cert.read_text(), key.read_text()), end="")
    except ValueError as e:
        raise UsageError(str(e))
    return 0


def remove_host(a) -> int:
    stack = Stack(a.home)
    if f"host-{a.host_id}" not in stack.pids():
        raise UsageError(f"no host {a.host_id} in the stack in {a.home}")
    stack.remove_host(a.host_id)
    print(f"host {a.host_id} stopped; its coordinator will mark it lost")
    return 0


def serve(a) -> int:
    if not a.stack_file:
        raise UsageError("--stack-file or GANTRY_STACK_FILE is required")
    import ray

    from gantry.cluster.serve_api import deploy_services
    ray.init(address=a.address, namespace="gantry")
    deploy_services(str(Path(a.stack_file).resolve()), a.api_port, a.api_host)
    print(f"gantry actors and API started (port {a.api_port})")
    return 0


def token(a) -> int:
    home = Stack(a.home).home
    secret_file = Path(home) / "jwt.secret"
    if not secret_file.exists():
        print(f"no stack secret in {home}; run `gantry up` first", file=sys.stderr)
        return 1
    from gantry.auth import issue, issue_host
    secret = secret_file.read_text().strip()
    if a.host or a.dc:
        if not (a.host and a.dc) or a.user or a.admin or a.rate:
            raise UsageError("a host token takes --host, --dc and the projects it may serve (--project; none: every one)")
        try:
            print(issue_host(secret, a.host, a.dc, a.project or None))
        except ValueError as e:
            raise UsageError(str(e))
        return 0
    if not a.user:
        raise UsageError("--user is required (or --host and --dc for a node daemon)")
    if (a.rate is None) != (a.burst is None):
        raise UsageError("--rate and --burst go together")
    print(issue(secret, a.user, a.project, a.admin, rate=(a.rate, a.burst) if a.rate else None, roles=a.role))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gantry", description="gantry: build, replicate and deploy commits")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _stack_commands(sub)
    _api_commands(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] in (["build", "pin"], ["build", "unpin"]):   # `gantry build pin P B` is `gantry pin P B`
        argv = argv[1:]
    if argv[:2] in (["deploy", "watch"], ["deploy", "approve"]):
        argv = [f"deploy-{argv[1]}", *argv[2:]]
    a = ap.parse_args(argv)
    missing = [m for m in CONTROL_PLANE if a.cmd in ("up", "serve", "token") and importlib.util.find_spec(m) is None]
    try:
        if missing:
            raise ModuleNotFoundError(name=missing[0])
        return a.func(a) or 0
    except UsageError as e:
        ap.error(str(e))
    except ModuleNotFoundError as e:   # a host's install: the agent alone
        print(f"gantry {a.cmd}: no module {e.name!r}: the control plane and its CLI need "
              "`pip install 'gantry[stack]'`; this install holds the host agent (`gantry-node`) only", file=sys.stderr)
        return 2
    except GantryError as e:
        print(json.dumps({"status": e.status, "error": e.error, "detail": e.detail}), file=sys.stderr)
        return EXIT_API


if __name__ == "__main__":
    sys.exit(main())
