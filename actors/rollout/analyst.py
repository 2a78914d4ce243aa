"""Canary analysis at run time: for each wave baking in a datacenter of a deployment that has an
analysis, query Prometheus every interval, decide (`gantry.rollout.analysis`), record every
measurement, and give the wave its verdict, which the rollout waits for. Also writes the
Prometheus file-based discovery targets of the apps deployments run on hosts, labelled so a
query can tell the canary hosts from the baseline.

Plain logic over Redis and a `PrometheusAPI`; `actors.AnalystActor` runs it on the head node.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from gantry.actors.rollout.prometheus_api import PrometheusAPI, QueryFailed
from gantry.artifacts.atomic import write_atomically
from gantry.records import Deployment
from gantry.rollout.analysis import AnalysisIn, Measurement, MetricIn, Verdict, compare, conclude, intervals, render, \
    score, threshold
from gantry.rollout.dc_rollout import DcRollout
from gantry.state import State
from gantry.statuses import AnalysisOutcome as O, DcPhase, DeploymentStatus, HostState

log = logging.getLogger("gantry.analyst")
TARGETS_EVERY_S = 2.0


class Analyst:
    def __init__(self, state: State, dcs_by_region: dict[str, list[str]], prometheus: Callable[[str], PrometheusAPI],
                 default_url: str, scrape_s: float, targets_dir: str = "", clock: Callable[[], float] = time.time):
        self.state, self.dcs_by_region = state, dcs_by_region
        self.prometheus, self.default_url = prometheus, default_url   # URL -> client; the stack's URL
        self.scrape_s, self.clock = scrape_s, clock
        self.settle_s = 2 * scrape_s   # an interval is measured once its last scrapes are in
        self.targets_dir = Path(targets_dir) if targets_dir else None
        self._records: dict[tuple[str, str, int], dict] = {}
        self._targets_at = 0.0
        self._written: dict[str, bytes] = {}

    def tick(self) -> None:
        now = self.clock()
        desired = self.state.deployments.desired_deployments()
        for dep in desired:
            if dep.status == DeploymentStatus.IN_PROGRESS and dep.analysis:
                self._deployment(dep, now)
        if self.targets_dir and now >= self._targets_at:
            self._targets_at = now + TARGETS_EVERY_S
            self.write_targets({d.project: d for d in desired})

    def _deployment(self, dep: Deployment, now: float) -> None:
        analysis = AnalysisIn.model_validate(dep.analysis)
        decided = self.state.analyses.verdicts(dep.deployment_id)
        url = (self.state.projects.get(dep.project) or {}).get("prometheusURL") or self.default_url
        for region in dep.regions or self.dcs_by_region:
            for dc in self.dcs_by_region.get(region, ()):
                saved = self.state.deployments.load_rollout(dep.deployment_id, dc)
                rollout = DcRollout.from_dict(saved) if saved else None
                if rollout and rollout.analyze and rollout.phase == DcPhase.BAKING and (dc, rollout.wave) not in decided:
                    self._wave(dep, analysis, url, region, dc, rollout, now)

    def _wave(self, dep: Deployment, a: AnalysisIn, url: str, region: str, dc: str, r: DcRollout, now: float) -> None:
        key = (dep.deployment_id, dc, r.wave)
        rec = self._records.get(key) or self.state.analyses.get(dep.deployment_id, dc, r.wave)
        if rec is None:
            rec = {"dc": dc, "region": region, "wave": r.wave + 1, "build": dep.build_id, "baseline": dep.previous_build,
                   "canaryHosts": sorted(r.waves[r.wave]), "baselineHosts": r.baseline(h for w in r.waves for h in w),
                   "startedAt": r.bake_began, "intervalS": a.intervalS, "planned": intervals(a, r.bake_s),
                   "prometheus": url, "intervals": [], "outcome": None, "reason": ""}
        self._records = {**dict(list(self._records.items())[-63:]), key: rec}
        start = rec["startedAt"] + len(rec["intervals"]) * a.intervalS
        end = start + a.intervalS
        if now < end + self.settle_s:
            return
        v, shown = self._judge(a, dep, rec, start, end)
        rec["intervals"].append({"index": len(rec["intervals"]) + 1, "start": start, "end": end,
                                 "outcome": v.outcome.value, "score": v.score, "reason": v.reason,
                                 "measurements": shown})
        so_far = [Verdict(O(i["outcome"]), i["score"], i["reason"]) for i in rec["intervals"]]
        final = conclude(a, so_far, rec["planned"])
        if final is not None:
            rec["outcome"], rec["reason"] = final.outcome.value, final.reason
        self.state.analyses.save(dep.deployment_id, dc, r.wave, rec)
        log.info("%s %s wave %d interval %d: %s (%s)", dep.deployment_id, dc, r.wave + 1, len(rec["intervals"]),
                 v.outcome.value, v.reason)
        if final is not None:
            self.state.analyses.conclude(dep.deployment_id, dc, r.wave, final.outcome, final.reason)

    def _judge(self, a: AnalysisIn, dep: Deployment, rec: dict, start: float, end: float) -> tuple[Verdict, list[dict]]:
        """One interval: each metric measured, the verdict over them, and what each measurement shows."""
        measured = [self._measure(m, dep, rec, start, end) for m in a.metrics]
        done = [x for x, _ in measured if x is not None]
        skipped = "; ".join(shown["reason"] for x, shown in measured if x is None)
        v = score(a, done) if done else Verdict(O.PASS, None, f"nothing to measure: {skipped}")
        return v, [shown for _, shown in measured]

    def _measure(self, m: MetricIn, dep: Deployment, rec: dict, start: float, end: float) -> tuple:
        """(the decided measurement or None if skipped, its record)."""
        canary = {"build": dep.build_id, "baseline": dep.previous_build or "", "dc": rec["dc"], "region": rec["region"],
                  "project": dep.project, "wave": str(rec["wave"]), "hosts": rec["canaryHosts"],
                  "baselineHosts": rec["baselineHosts"], "interval": rec["intervalS"]}
        base = {**canary, "hosts": rec["baselineHosts"], "build": dep.previous_build or ""}
        query, base_query = render(m.query, canary), render(m.query, base) if rec["baselineHosts"] else None
        api = self.prometheus(rec["prometheus"])
        shown = {"metric": m.name, "kind": m.kind, "query": query, "baselineQuery": base_query,
                 "link": api.graph_link(query, start, end), "critical": m.critical}
        if m.kind == "compare" and not base_query:
            why = f"{m.name}: skipped, no host of {rec['dc']} is left on the previous build to compare with"
            return None, {**shown, "outcome": O.SKIPPED.value, "reason": why}
        try:
            if m.kind == "threshold":
                base = next((v for _, v in api.instant(base_query, end)), None) if base_query else None
                outcome = _worst([threshold(m, v, base) for _, v in api.instant(query, end)]) or threshold(m, None, base)
            else:
                step = max(self.scrape_s, 1.0)
                samples = lambda q: [x for _, xs in api.range(q, start, end, step) for x in xs]  # noqa: E731
                outcome = compare(m, samples(query), samples(base_query))
        except QueryFailed as e:
            outcome = Measurement(m.name, O.INCONCLUSIVE, f"{m.name}: {e}")
        return outcome, {**shown, **{k: _json(v) for k, v in outcome.__dict__.items() if k != "metric"},
                         "outcome": outcome.outcome.value}

    # --- calibration --------------------------------------------------------------------------

    def check(self, project: str, runs: int = 20, seed: int | None = None) -> dict:
        """An A/A run of the project's analysis: in each datacenter, the hosts that run its most
        common build are split at random into a canary (one host, as the first wave) and a
        baseline, and the analysis judges the split over each of the last `runs` intervals
        since the fleet last changed. A build that changed nothing should hardly ever fail."""
        p = self.state.projects.get(project) or {}
        if not p.get("analysis"):
            raise ValueError(f"project {project} has no analysis to check")
        a = AnalysisIn.model_validate_json(p["analysis"])
        url, now, rng = p.get("prometheusURL") or self.default_url, self.clock(), random.Random(seed)
        last = self.state.deployments.get(self.state.deployments.desired(project).get("deploymentID") or "") or {}
        # the fleet changed last as its last deployment ended; its hosts settle within an interval
        since = int(last.get("updatedAt") or 0) / 1000 + a.intervalS
        ends = [e for k in range(runs) if (e := now - self.settle_s - k * a.intervalS) - a.intervalS >= since]
        results, skipped = [], []
        for region, dcs in self.dcs_by_region.items():
            for dc in dcs:
                live = [h for h in self.state.hosts.for_project(dc, project) if h["state"] == HostState.ACTIVE]
                build = Counter(h["activeBuildID"] for h in live).most_common(1)
                group = sorted(h["hostID"] for h in live if build and h["activeBuildID"] == build[0][0])
                if len(group) < 2:
                    skipped.append(f"{dc}: {len(group)} host(s) run one build; a split needs two")
                    continue
                dep = Deployment("a/a", project, build[0][0], build[0][0], DeploymentStatus.IN_PROGRESS)
                for end in ends:
                    canary = rng.sample(group, 1)
                    rec = {"dc": dc, "region": region, "wave": 1, "canaryHosts": canary, "intervalS": a.intervalS,
                           "baselineHosts": [h for h in group if h not in canary], "prometheus": url}
                    v, shown = self._judge(a, dep, rec, end - a.intervalS, end)
                    results.append({"dc": dc, "build": build[0][0], "start": end - a.intervalS, "end": end, "canaryHosts": canary,
                                    "baselineHosts": rec["baselineHosts"], "outcome": v.outcome.value, "score": v.score,
                                    "reason": v.reason, "measurements": shown})
        n = len(results)
        count = Counter(r["outcome"] for r in results)
        return {"project": project, "since": since, "runs": n, "pass": count[O.PASS],
                "fail": count[O.FAIL], "inconclusive": count[O.INCONCLUSIVE],
                "falseFailureRate": count[O.FAIL] / n if n else None,
                "inconclusiveRate": count[O.INCONCLUSIVE] / n if n else None,
                "skipped": skipped + ([] if n else [f"no interval of {a.intervalS:g} s since the fleet last changed"]),
                "failures": [r["reason"] for r in results if r["outcome"] == O.FAIL][:10], "results": results}

    # --- discovery ----------------------------------------------------------------------------

    def write_targets(self, desired: dict[str, Deployment]) -> None:
        """apps-<project>.json for each project with a metrics port: each host's app, labelled."""
        for project in self.state.projects.names():
            p = self.state.projects.get(project) or {}
            port = int(p.get("metricsPort") or 0)
            path = self.targets_dir / f"apps-{project}.json"
            if not port:
                if project in self._written:
                    path.unlink(missing_ok=True)
                    self._written.pop(project)
                continue
            dep = desired.get(project)
            groups = []
            for region, dcs in self.dcs_by_region.items():
                for dc in dcs:
                    waves = self._waves(dep, dc)
                    for h in self.state.hosts.for_project(dc, project):
                        if not h.get("address") or h.get("state") == HostState.LOST:
                            continue
                        ip = h["address"].rsplit(":", 1)[0]
                        groups.append({"targets": [f"{ip}:{port}"], "labels": {
                            "gantry_project": project, "gantry_build": h.get("activeBuildID") or "none",
                            "gantry_dc": dc, "gantry_region": region, "gantry_host": h["hostID"],
                            "gantry_wave": waves.get(h["hostID"], "baseline") if waves is not None else "none"}})
            body = json.dumps(groups, indent=1, sort_keys=True).encode()
            if self._written.get(project) != body:
                write_atomically(path, body)
                self._written[project] = body

    def _waves(self, dep: Deployment | None, dc: str) -> dict[str, str] | None:
        """host -> the wave (1-based) of the deployment that moved it, for hosts moved so far
        (the rest are its baseline); None when no deployment is under way."""
        if dep is None or not dep.status.active:
            return None
        saved = self.state.deployments.load_rollout(dep.deployment_id, dc)
        if not saved:
            return {}
        r = DcRollout.from_dict(saved)
        return {h: str(i + 1) for i, wave in enumerate(r.waves[: r.wave + 1]) for h in wave}


def _json(v):
    """JSON has no infinities: an infinite effect (a baseline of 0) is shown as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _worst(measured: list[Measurement]) -> Measurement | None:
    """Of one measurement per series, the first that fails, else the first."""
    return next((x for x in measured if x.outcome == O.FAIL), measured[0] if measured else None)
