"""A wave's bake waits for its canary analysis: pass goes on, fail rolls back, inconclusive
pauses the deployment for a person (the reconcile, no Redis)."""
from gantry.records import Deployment, HostView
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.reconcile import Snapshot, reconcile
from gantry.rollout.waves import Strategy
from gantry.statuses import AnalysisOutcome as O, DcPhase, DeploymentStatus as D, HostState as H

STRATEGY = {"steps": [1, 1.0], "minHealthy": 1.0, "bakeS": 10, "stage": "wave", "regionWaves": [["us"]]}
ANALYSIS = {"metrics": [{"name": "errors", "query": 'x{h=~"{{hosts}}"}', "kind": "threshold",
                         "failure": {"op": ">", "value": 0.01}}]}


def canary_baking(now=100.0):
    """h0 (the canary) runs the new build and is healthy; h1 still runs the old one."""
    hosts = {"h0": HostView("h0", "new", H.ACTIVE, "new", "new", "new"),
             "h1": HostView("h1", "old", H.ACTIVE, "old", "old", "old")}
    rollout = DcRollout.start("new", "old", list(hosts), Strategy(steps=(1, 1.0), min_healthy=1.0, bake_s=10),
                              analyze=True)
    rollout.step(hosts, now)
    assert rollout.phase == DcPhase.BAKING and rollout.bake_began == now
    return hosts, rollout


def snap(rollout, hosts, now, verdict=None, status=D.IN_PROGRESS, analysis=ANALYSIS):
    dep = Deployment("d1", "web", "new", "old", status, dict(STRATEGY), ["us"], analysis=analysis)
    return Snapshot(dc="us-a", region="us", dcs_by_region={"us": ["us-a"]}, deployment=dep, hosts=hosts,
                    holding={"us"}, staged_dcs=set(), outcomes={}, rollout=rollout, current="old", now=now,
                    analysis={0: verdict} if verdict else {})


def test_the_bake_does_not_end_before_the_analysis_passes():
    hosts, rollout = canary_baking()
    plan = reconcile(snap(rollout, hosts, 200.0))   # the bake is long over, the analysis still runs
    assert plan.rollout.wave == 0 and plan.rollout.phase == DcPhase.BAKING and not plan.targets
    plan = reconcile(snap(plan.rollout, hosts, 201.0, (O.PASS, "2 intervals passed")))
    assert plan.rollout.wave == 1 and plan.targets == {"h1": "new"}


def test_a_pass_does_not_cut_the_bake_short():
    hosts, rollout = canary_baking()
    plan = reconcile(snap(rollout, hosts, 105.0, (O.PASS, "ok")))
    assert plan.rollout.wave == 0 and plan.rollout.phase == DcPhase.BAKING


def test_a_failed_analysis_rolls_back_at_once_with_its_reason():
    hosts, rollout = canary_baking()
    why = "errors = 0.05, which is > 0.01 (failure condition)"
    plan = reconcile(snap(rollout, hosts, 101.0, (O.FAIL, why)))
    assert plan.targets == {"h0": "old"} and plan.rollout.phase == DcPhase.ROLLING_BACK
    assert plan.rollout.reason == f"wave 1: canary analysis failed: {why}"


def test_an_inconclusive_analysis_pauses_the_deployment_and_resume_goes_on_once_waived():
    hosts, rollout = canary_baking()
    why = "analysis inconclusive: errors: no data (the query returned None)"
    plan = reconcile(snap(rollout, hosts, 120.0, (O.INCONCLUSIVE, why)))
    assert plan.status == (D.PAUSED, f"{why} (us-a, wave 1)") and not plan.targets
    paused = reconcile(snap(plan.rollout, hosts, 121.0, (O.INCONCLUSIVE, why), status=D.PAUSED))
    assert paused.status is None and paused.rollout.phase == DcPhase.PAUSED
    resumed = reconcile(snap(paused.rollout, hosts, 122.0, (O.PASS, "resumed by alice"), status=D.IN_PROGRESS))
    assert resumed.rollout.wave == 1 and resumed.targets == {"h1": "new"}


def test_without_analysis_the_bake_alone_decides():
    hosts, _ = canary_baking()
    rollout = DcRollout.start("new", "old", list(hosts), Strategy(steps=(1, 1.0), min_healthy=1.0, bake_s=10))
    rollout.step(hosts, 100.0)
    plan = reconcile(snap(rollout, hosts, 111.0, analysis=None))
    assert plan.rollout.wave == 1


def test_a_wave_that_fails_its_health_gate_rolls_back_while_its_analysis_runs():
    hosts, rollout = canary_baking()
    hosts["h0"] = HostView("h0", "new", H.FAILED, "new", "new", "new")
    plan = reconcile(snap(rollout, hosts, 101.0))
    assert plan.rollout.phase == DcPhase.ROLLING_BACK and "1 of 1 hosts failed" in plan.rollout.reason
