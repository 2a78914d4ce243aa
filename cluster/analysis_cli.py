"""`gantry analysis check P` (an A/A run of the project's canary analysis) and `gantry deploy
watch P D` (a deployment, live, with each metric's state)."""
from __future__ import annotations

import json

from gantry.cluster.commands import _console, client_for
from gantry.statuses import DeploymentStatus


def add_commands(cmd) -> None:
    an = cmd("analysis", "canary analysis: `check P` runs the project's analysis A/A on its current fleet",
             check, json_out=True)
    an.add_argument("what", choices=["check"])
    an.add_argument("project")
    an.add_argument("--runs", type=int, default=20, help="intervals to judge in each datacenter (default 20)")
    dw = cmd("deploy-watch", "follow a deployment live with its canary analysis (also `gantry deploy watch P D`)",
             watch, json_out=True)
    dw.add_argument("project")
    dw.add_argument("deployment")


def check(a) -> int:
    r = client_for(a).analysis_check(a.project, a.runs)
    if getattr(a, "json", False):
        print(json.dumps(r, indent=2))
        return 0
    if not r["runs"]:
        print(f"{a.project}: nothing to judge: {'; '.join(r['skipped'])}")
        return 1
    print(f"{a.project}: {r['runs']} A/A splits (a random host of each datacenter against the others on the same "
          f"build, one per interval since the fleet last changed)")
    print(f"  pass {r['pass']}, fail {r['fail']}, inconclusive {r['inconclusive']}: false-failure rate "
          f"{r['falseFailureRate']:.1%}, inconclusive rate {r['inconclusiveRate']:.1%}")
    for why in r["failures"]:
        print(f"  would have failed: {why}")
    for why in r["skipped"]:
        print(f"  skipped {why}")
    if r["falseFailureRate"] >= 0.05:
        print("  this analysis would fail more than 1 in 20 builds that changed nothing: raise minEffect, lower "
              "alpha, or allow a failureLimit")
    return 0


def watch(a) -> int:
    from gantry.cluster import progress
    d = progress.watch_deployment(client_for(a), a.project, a.deployment, _console())
    if getattr(a, "json", False):
        print(json.dumps(d.model_dump(), indent=2))
    return 0 if d.status == DeploymentStatus.COMPLETED else 1

