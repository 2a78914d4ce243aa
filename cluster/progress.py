"""Live progress for `gantry build --wait` and `gantry deploy --wait`, drawn with rich.

A build shows its phase and log tail, then per-region replication bytes; a deployment shows a bar
per datacenter (hosts active / total) with its current wave. On a terminal the view redraws in
place; elsewhere (CI, pipes) it prints a line on each change of status and the final view.
"""
from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gantry.client import _Client
from gantry.models import Build, Deployment
from gantry.statuses import BuildStatus as B
from gantry.statuses import DeploymentStatus as D
from gantry.statuses import ReplicationStatus as R

STYLE = {B.SUCCEEDED: "green", D.COMPLETED: "green", R.REPLICATED: "green", B.FAILED: "red", B.DEAD: "red",
         D.ROLLED_BACK: "red", D.ABORTED: "red", B.CANCELLED: "yellow", D.SUPERSEDED: "yellow", D.PAUSED: "yellow",
         D.WAITING_APPROVAL: "magenta", B.EXPIRED: "dim"}


def _status(s: str) -> Text:
    return Text(s, style=STYLE.get(s, "cyan"))


def _bar(done: int, total: int) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=min(done, max(total, 1)), width=30)


def _bytes(n: int | None) -> str:
    n, units = float(n or 0), ["B", "KiB", "MiB", "GiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.1f} {units[i]}" if i else f"{int(n)} B"


def build_view(b: Build, log_tail: str) -> Panel:
    parts: list = [Text.assemble("status ", _status(b.buildStatus), f"   commit {b.commitSHA[:12]}",
                                 f"   retries {b.retries}" if b.retries else "")]
    if b.error:
        parts.append(Text(f"error: {b.error}", style="red"))
    lines = [ln for ln in log_tail.splitlines() if ln.strip()][-8:]
    if lines and b.buildStatus in (B.QUEUED, B.BUILDING) or b.buildStatus in (B.FAILED, B.DEAD):
        parts.append(Panel(Text("\n".join(lines)), title="log", title_align="left", border_style="dim"))
    if b.replication:
        size = b.artifact.size if b.artifact and b.artifact.size else 0
        t = Table.grid(padding=(0, 2))
        for r in b.replication:
            moved = r.bytesTransferred + r.bytesSkipped
            t.add_row(r.region, _status(r.replicationStatus), _bar(moved if size else 0, size),
                      f"{_bytes(moved)} / {_bytes(size)}", f"from {r.source}" if r.source else "",
                      f"retries {r.retries}" if r.retries else "")
        parts.append(Panel(t, title="replication", title_align="left", border_style="dim"))
    return Panel(Group(*parts), title=f"build {b.buildID} ({b.projectName})", title_align="left")


def deployment_view(d: Deployment) -> Panel:
    head = Text.assemble("status ", _status(d.status), f"   build {d.buildID[:12]}",
                         f"   region {d.currentRegion}" if d.currentRegion else "",
                         f"   ({d.reason})" if d.reason else "")
    if d.approval:
        a = d.approval
        head.append(f"\n  waits at {a['gate']} for {a['mayApprove']}: {len(a['approvals'])} of {a['needed']} "
                    f"approved ({', '.join(x['user'] for x in a['approvals']) or 'no one yet'}); "
                    f"`gantry deploy approve {d.projectName} {d.deploymentID}`")
    t = Table.grid(padding=(0, 2))
    for region in d.regions:
        for dc in region.dcs:
            h = dc.hosts
            wave = f"wave {dc.wave}/{dc.waves}" if dc.wave else ("staging" if h.downloading or h.staged else "waiting")
            t.add_row(region.region, dc.dc, _bar(h.active, h.total), f"{h.active}/{h.total} active",
                      f"{h.staged} staged" if h.staged else "", wave, dc.phase or "", f"{h.failed} failed" if h.failed else "", f"{h.lost} lost" if h.lost else "")
    return Panel(Group(head, t), title=f"deployment {d.deploymentID} ({d.projectName})", title_align="left")


class _Watcher:
    def __init__(self, console: Console):
        self.console = console
        self.live = None
        self.last_status = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live
            self.live = Live(console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def show(self, status: str, view) -> None:
        if self.live:
            self.live.update(view)
        elif status != self.last_status:
            self.console.print(Text.assemble("… ", _status(status)))
        self.last_status = status

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)


def watch_build(client: _Client, project: str, build_id: str, console: Console, poll_s: float = 1.0,
                timeout_s: float = 3600) -> Build:
    log = {"offset": 0, "tail": ""}

    def update(b: Build) -> None:
        chunk = client.logs(project, build_id, log["offset"])
        log["offset"], log["tail"] = chunk.nextOffset, (log["tail"] + chunk.data)[-4000:]
        w.show(b.buildStatus, build_view(b, log["tail"]))

    with _Watcher(console) as w:
        b = client.wait_build(project, build_id, timeout_s, poll_s, on_update=update)
    if not w.live:
        console.print(build_view(b, log["tail"]))
    return b


def analysis_view(report: dict) -> Panel | None:
    """Each wave's canary analysis: its state, and each metric's last measurement."""
    if not report.get("waves"):
        return None
    t = Table.grid(padding=(0, 2))
    for w in report["waves"]:
        last = w["intervals"][-1] if w["intervals"] else None
        where = f"{w['dc']} wave {w['wave']}"
        t.add_row(where, _status(w["outcome"] or "RUNNING"), f"{len(w['intervals'])}/{w['planned']} intervals",
                  Text(w["reason"] or (last or {}).get("reason") or "", overflow="fold"))
        for m in (last or {}).get("measurements", []):
            t.add_row("", "", f"  {m['metric']}", _status(m["outcome"]), Text(m.get("reason") or "", overflow="fold"))
    return Panel(t, title="canary analysis", title_align="left", border_style="dim")


def watch_deployment(client: _Client, project: str, deployment_id: str, console: Console, poll_s: float = 1.0,
                     timeout_s: float = 3600) -> Deployment:
    def view(d: Deployment):
        analysis = analysis_view(client.analysis(project, deployment_id))
        return Group(deployment_view(d), analysis) if analysis else deployment_view(d)

    with _Watcher(console) as w:
        d = client.wait_deployment(project, deployment_id, timeout_s, poll_s,
                                   on_update=lambda d: w.show(d.status, view(d)))
    if not w.live:
        console.print(view(d))
    return d

