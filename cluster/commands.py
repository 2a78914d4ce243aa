"""What each API command of `gantry` does: call the API through the SDK and print the answer
(a table, or the API's JSON with --json). `cli.py` wires each to its subcommand."""
from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from gantry.client import GantryError
from gantry.cluster.stack import Stack
from gantry.statuses import BuildStatus, DeploymentStatus

EXIT_FAILED, EXIT_API = 1, 2


class UsageError(Exception):
    """Arguments that parse but do not make sense together."""


def client_for(a):
    from gantry.client import HttpClient
    from gantry.auth import issue
    url, token, ca = a.url, a.token, a.ca
    if not url or not token:
        stack = Stack(a.home)
        if not stack.stack_file.exists():
            raise SystemExit(f"no gantry to talk to: pass --url and --token, set GANTRY_URL and GANTRY_TOKEN, "
                             f"or start a local stack (gantry up --home {a.home})")
        cfg = stack.config()
        url, ca = url or cfg.api_url, ca or cfg.ca_file
        token = token or issue(cfg.jwt_secret(), f"local:{getpass.getuser()}", admin=True)
    return HttpClient(url, token, ca or "")


def _print(a, value, text: str | None = None) -> None:
    if getattr(a, "json", False) or text is None:
        data = ([v.model_dump(mode="json") for v in value] if isinstance(value, list) else
                value if isinstance(value, dict) else value.model_dump(mode="json"))
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
    if a.stage:
        s["stage"] = a.stage
    if a.region_waves:
        s["regionWaves"] = [[r.strip() for r in wave.split(",") if r.strip()] for wave in a.region_waves.split(";")]
    if getattr(a, "approve_before", None):
        s["approve"] = [{"before": g, "count": a.approvals, "notRequester": a.not_requester} for g in a.approve_before]
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



def _console():
    from rich.console import Console
    return Console()


def _more(page) -> str:
    return f"\nmore: --cursor {page.nextCursor}" if page.nextCursor else ""


def status(a) -> int:
    if a.project is None:
        return stack_status(Stack(a.home), a.json)
    if a.build is None:
        raise UsageError("status takes no argument (the stack) or PROJECT BUILD")
    b = client_for(a).get_build(a.project, a.build)
    _print(a, b, _table([[b.buildID, b.buildStatus, b.commitSHA[:12], b.createdAt, b.finishedAt or "",
                          b.error or ""]], ["BUILD", "STATUS", "COMMIT", "CREATED", "FINISHED", "ERROR"]))
    return 0


def project(a) -> int:
    c = client_for(a)
    if a.action == "list":
        ps = c.projects()
        _print(a, ps, _table([[p.projectName, p.repoURL, p.defaultBranch, p.webhookConfigured] for p in ps],
                             ["PROJECT", "REPO", "BRANCH", "WEBHOOK"]))
    elif not a.name or (a.action == "add" and not a.repo):
        raise UsageError("usage: gantry project add NAME REPO | gantry project show NAME")
    elif a.action == "show":
        p = c.project(a.name)
        build = json.dumps(p.build) if p.build else "none (each commit's gantry.toml)"
        _print(a, p, "\n".join([f"{p.projectName}: {p.repoURL} (default branch {p.defaultBranch})",
                                 f"build:  {build}",
                                 f"deploy: {json.dumps(p.deploy) if p.deploy else '-'}",
                                 f"egressAllow: {', '.join(p.egressAllow) or 'nothing'}",
                                 f"webhook: {'configured' if p.webhookConfigured else 'none'} ({p.webhookPath}), "
                                 f"prestage: {p.prestage}, coalesce: {p.coalesce}",
                                 f"retention: {json.dumps(p.retention.model_dump())}",
                                 f"freeze windows: {len(p.freeze)}, notifications: {len(p.notifications)} subscription(s), "
                                 f"GitHub: {p.github['repo'] if p.github else 'off'}"]))
    else:
        if (a.rate is None) != (a.burst is None):
            raise UsageError("--rate and --burst go together")
        build = {k: v for k, v in {"command": a.build_command, "output": a.output, "timeout": a.timeout,
                                   "fetch": a.fetch, "cache": a.cache, "cpus": a.cpus, "memoryMB": a.memory_mb,
                                   "submodules": a.submodules}.items() if v is not None}
        deploy = {k: v for k, v in {"start": a.start, "health": a.health, "auto": a.auto_deploy,
                                    "duringFreeze": a.during_freeze, "concurrency": a.concurrency}.items() if v is not None}
        if deploy:   # the flags change only what they name
            deploy = {**_current(c, a.name, "deploy"), **deploy}
        retention = {k: v for k, v in {"keepLast": a.keep_last, "keepDeployedDays": a.keep_deployed_days,
                                       "cacheUnusedDays": a.cache_unused_days, "cacheMaxBytes": a.cache_max_bytes}.items()
                     if v is not None}
        if retention:    # the flags change only what they name
            retention = {**_current(c, a.name, "retention"), **retention}
        notifications = json.loads(Path(a.notifications).read_text()) if a.notifications else None
        github = None if a.github is None else {} if not a.github else {
            "repo": a.github, "token": a.github_token, "apiURL": a.github_api, "environment": a.github_environment}
        p = c.register(a.name, a.repo, webhook_secret=a.webhook_secret, default_branch=a.default_branch,
                       coalesce=a.coalesce, rate_limit=(a.rate, a.burst) if a.rate else None, prestage=a.prestage,
                       build=build or None, deploy=deploy or None, egress_allow=a.egress_allow,
                       retention=retention or None, notifications=notifications, github=github)
        _print(a, p, f"project {p.projectName} registered; GitHub webhook URL path: {p.webhookPath}")
    return 0


def _current(c, name: str, what: str) -> dict:
    """The project's `what` settings as they are (none for a new project)."""
    try:
        current = getattr(c.project(name), what)
        return current.model_dump() if hasattr(current, "model_dump") else dict(current)
    except GantryError as e:
        if e.status == 404:
            return {}
        raise


def pin(a) -> int:
    b = client_for(a).pin(a.project, a.build, a.pinned)
    _print(a, b, f"build {b.buildID} {'pinned: retention keeps it' if b.pinned else 'unpinned'}")
    return 0


def gc(a) -> int:
    c = client_for(a)
    r = c.gc_report() if a.last else c.gc(a.dry_run, a.grace)
    if getattr(a, "json", False):
        return _print(a, r) or 0
    lines = [f"{'dry run: ' if r.dryRun else ''}{r.sweep} ({r.seconds:.1f} s, started {r.startedAt})"]
    for name, p in r.projects.items():
        verb = "would expire" if r.dryRun else "expired"
        lines += [f"{name}: {len(p.kept)} builds kept, {len(p.expired)} {verb}, {len(p.caches)} caches "
                  f"{'would go' if r.dryRun else 'dropped'}, {p.archived} records archived"]
        lines += [f"  {verb} {e.buildID}: {e.reason}" for e in p.expired]
        lines += [f"  cache {d.branch}: {d.reason}" for d in p.caches]
    rows = [[region, t.keptObjects, _mib(t.keptBytes), t.reclaimedObjects, _mib(t.reclaimedBytes), t.youngObjects]
            for region, t in r.regions.items()]
    gone = "WOULD GO" if r.dryRun else "RECLAIMED"
    lines.append(_table(rows, ["REGION", "KEPT", "KEPT MiB", gone, f"{gone} MiB", "IN GRACE"]))
    print("\n".join(lines))
    return 0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


def build(a) -> int:
    from gantry.cluster import progress
    c = client_for(a)
    env = dict(kv.split("=", 1) for kv in a.env if "=" in kv)
    acc = c.build(a.project, a.sha, env=env or None, priority=a.priority)
    return _maybe_wait(a, acc, f"build {acc.buildID} {acc.buildStatus}",
                       lambda: progress.watch_build(c, a.project, acc.buildID, _console()),
                       lambda b: b.buildStatus == BuildStatus.SUCCEEDED)


def builds(a) -> int:
    page = client_for(a).builds(a.project, a.limit, a.cursor)
    text = _table([[b.buildID, b.buildStatus, b.commitSHA[:12], b.createdAt] for b in page.builds],
                  ["BUILD", "STATUS", "COMMIT", "CREATED"])
    _print(a, page, text + _more(page))
    return 0


def logs(a) -> int:
    c = client_for(a)
    if a.follow:
        for chunk in c.follow_logs(a.project, a.build):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return 0
    offset = 0
    while True:
        chunk = c.logs(a.project, a.build, offset)
        sys.stdout.write(chunk.data)
        if not chunk.data:
            return 0
        offset = chunk.nextOffset


def cancel(a) -> int:
    b = client_for(a).cancel(a.project, a.build)
    _print(a, b, f"build {b.buildID} {b.buildStatus}")
    return 0


def replicate(a) -> int:
    b = client_for(a).retry_replication(a.project, a.build)
    _print(a, b, f"build {b.buildID} {b.buildStatus}: " + ", ".join(
        f"{r.region} {r.replicationStatus}" for r in b.replication))
    return 0


def deploy(a) -> int:
    from gantry.cluster import progress
    c = client_for(a)
    if getattr(a, "dry_run", False):
        p = c.predict(a.project, a.build, _strategy(a))
        _print(a, p, prediction_text(p))
        return 0
    acc = c.deploy(a.project, a.build, _strategy(a), a.override_freeze) if a.cmd == "deploy" \
        else c.rollback(a.project, a.build)
    return _maybe_wait(a, acc, f"deployment {acc.deploymentID} of build {acc.buildID} {acc.status}",
                       lambda: progress.watch_deployment(c, a.project, acc.deploymentID, _console()),
                       lambda d: d.status == DeploymentStatus.COMPLETED)


def prediction_text(p) -> str:
    h = p.assumptions
    lines = [f"predicted: {p.predictedSeconds} s to {p.status} over {h.get('hosts', 0)} hosts "
             f"({h.get('hostsWithMeasuredThroughput', 0)} at the throughput of their last download, the rest at "
             f"{h.get('defaultHostBytesPerS', 0) / 1e6:g} MB/s)"]
    for r in p.perRegion:
        lines.append(f"  {r.region:>12}: staged at {r.stagedSeconds} s, active at {r.activeSeconds} s")
    lines.append("assumptions: " + ", ".join(f"{k}={v}" for k, v in h.items() if k not in ("hosts", "hostsWithMeasuredThroughput")))
    lines.append("nothing was created: run it again without --dry-run to deploy")
    return "\n".join(lines)


def deployments(a) -> int:
    from gantry.cluster import progress
    c = client_for(a)
    if a.deployment:
        d = c.deployment(a.project, a.deployment)
        if a.json:
            _print(a, d)
        else:
            _console().print(progress.deployment_view(d))
        return 0
    page = c.deployments(a.project, a.limit, a.cursor)
    text = _table([[d.deploymentID, d.status, d.buildID[:12], d.createdAt, d.createdBy] for d in page.deployments],
                  ["DEPLOYMENT", "STATUS", "BUILD", "CREATED", "BY"])
    _print(a, page, text + _more(page))
    return 0


def deployment_op(a) -> int:
    d = getattr(client_for(a), a.cmd)(a.project, a.deployment)
    _print(a, d, f"deployment {d.deploymentID} {d.status}")
    return 0


def approve(a) -> int:
    d = client_for(a).approve(a.project, a.deployment, a.comment)
    _print(a, d, f"deployment {d.deploymentID} {d.status}" + (f": {d.reason}" if d.reason else ""))
    return 0


def notifications(a) -> int:
    out = client_for(a).notifications(a.project, a.limit)
    rows = [[n.createdAt, n.event, n.kind, n.destination.get("url") or n.destination.get("apprise") or n.kind,
             n.status, n.attempts, (n.error or "")[:60]] for n in out.notices]
    _print(a, out, _table(rows, ["AT", "EVENT", "KIND", "TO", "STATUS", "TRIES", "LAST ERROR"]))
    return 0


def hosts(a) -> int:
    hs = client_for(a).hosts(a.project)
    _print(a, hs, _table([[h.hostID, h.region, h.dc, h.state, (h.activeBuildID or "")[:12], h.error or ""]
                          for h in hs], ["HOST", "REGION", "DC", "STATE", "BUILD", "ERROR"]))
    return 0


def audit(a) -> int:
    page = client_for(a).audit(a.project, a.limit, a.cursor)
    text = _table([[e.at, e.user, e.action, e.project or "", e.target or ""] for e in page.entries],
                  ["AT", "USER", "ACTION", "PROJECT", "TARGET"])
    _print(a, page, text + _more(page))
    return 0


def archive(a) -> int:
    r = client_for(a).archive(a.older_than)
    _print(a, r, f"archived: {r.moved or 'nothing'}")
    return 0


def stack_status(stack: Stack, as_json: bool) -> int:
    s = stack.status()
    if as_json:
        print(json.dumps(s, indent=2))
    else:
        print(f"home       {s['home']}")
        print(f"running    {s['running']}  (API healthy: {s['apiHealthy']})")
        print(f"API        {s['apiURL']}")
        print(f"TLS        {('CA ' + s['caFile']) if s['caFile'] else 'off: plain HTTP (--insecure-plain-http)'}")
        print(f"dashboard  {s['dashboardURL']}")
        print(f"Ray        {s['rayDashboardURL']}")
        print(f"metrics    {s['metricsURL']}")
        print(f"Prometheus {s.get('prometheusURL') or '-'}")
        print(f"regions    {', '.join(s['regions'])}")
        for name, alive in s["processes"].items():
            print(f"  {'up  ' if alive else 'DOWN'} {name}")
    return 0 if s["running"] else 1
