"""The reconcile's rules, one snapshot at a time (no Redis, no simulator)."""
from gantry.records import Deployment, HostView
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.reconcile import Snapshot, reconcile
from gantry.rollout.waves import Strategy
from gantry.statuses import BuildStatus, DcPhase, DeploymentStatus as D, HostState as H

REGIONS = {"us": ["us-a"], "eu": ["eu-a"]}
STRATEGY = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0, "stage": "all", "regionWaves": [["us"], ["eu"]]}


def hosts(n=2, active="old", state=H.ACTIVE, target="old", **kw):
    return {f"h{i}": HostView(f"h{i}", active, state, target, target, target, **kw) for i in range(n)}


def snap(status=D.IN_PROGRESS, dc="us-a", region="us", **kw):
    dep = Deployment("d1", "web", "new", "old", status, dict(STRATEGY), ["us", "eu"], reason=kw.pop("reason", ""))
    base = dict(dc=dc, region=region, dcs_by_region=REGIONS, deployment=dep, hosts=hosts(), holding={"us", "eu"},
                staged_dcs=set(), outcomes={}, rollout=None, current="old", now=100.0)
    return Snapshot(**{**base, **kw})


def test_staging_comes_first_and_is_told_to_every_live_host():
    s = snap(hosts={**hosts(), "gone": HostView("gone", "old", H.LOST, "old")})
    plan = reconcile(s)
    assert plan.stages == {"h0": "new", "h1": "new"} and not plan.targets and not plan.staged
    assert plan.staging_began == 100.0 and plan.rollout is None


def test_staged_everywhere_then_the_first_wave_moves():
    staged = hosts(state=H.STAGED, target="old", stage_build="new")
    for v in staged.values():
        v.acked_target = "new"
    plan = reconcile(snap(hosts=staged, staged_dcs={"us-a", "eu-a"}, staging_began=90.0))
    assert plan.staged and plan.targets == {"h0": "new"} and plan.rollout.wave == 0


def test_a_failed_build_rolls_the_deployment_back_with_its_reason():
    plan = reconcile(snap(holding=set(), build_status=BuildStatus.FAILED, build_error="exit 2"))
    assert plan.status == (D.ROLLED_BACK, "build new is FAILED: exit 2")
    assert reconcile(snap(holding=set(), build_status=BuildStatus.DEPLOYING)).status is None   # still coming


def test_hosts_late_to_stage_count_as_failed_and_staging_ends():
    s = snap(staging_began=0.0, stage_deadline_s=50.0, hosts=hosts(state=H.DOWNLOADING, stage_build="new"))
    plan = reconcile(s)
    assert plan.late == ["h0", "h1"] and plan.staged
    late = hosts(state=H.DOWNLOADING, target="new", stage_late="new")
    assert late["h0"].failed_on("new") and not hosts()["h0"].failed_on("new")


def test_the_last_datacenter_done_completes_even_when_both_finished_at_once():
    done = DcRollout.start("new", "old", ["h0", "h1"], Strategy(steps=(1.0,), bake_s=0))
    done.phase = DcPhase.DONE
    both_done_but_unrecorded = snap(rollout=done, staged_dcs={"us-a", "eu-a"}, outcomes={"us-a": DcPhase.DONE, "eu-a": DcPhase.DONE},
                                    hosts=hosts(active="new", target="new"))
    assert reconcile(both_done_but_unrecorded).status == (D.COMPLETED, "")
    other_running = snap(rollout=done, staged_dcs={"us-a", "eu-a"}, hosts=hosts(active="new", target="new"))
    plan = reconcile(other_running)
    assert plan.outcome == DcPhase.DONE and plan.current == "new" and plan.status is None


def test_a_rolled_back_deployment_leaves_an_untouched_datacenter_on_its_build():
    plan = reconcile(snap(status=D.ROLLED_BACK, dc="eu-a", region="eu", reason="us-a: wave 1 failed",
                          hosts={**hosts(), "new-host": HostView("new-host", None, H.IDLE, None)}))
    assert plan.outcome == DcPhase.UNTOUCHED and plan.targets == {"new-host": "old"} and plan.status is None


def test_pause_holds_every_host_where_it_is():
    rolling = DcRollout.start("new", "old", ["h0", "h1"], Strategy(steps=(1, 1.0), bake_s=0))
    plan = reconcile(snap(status=D.PAUSED, rollout=rolling, staged_dcs={"us-a", "eu-a"}))
    assert plan.rollout.phase == DcPhase.PAUSED and not plan.targets and plan.moving


def test_a_datacenter_rolling_back_takes_the_staged_build_back_so_its_hosts_settle_on_the_previous():
    """Found when the head was lost during a stage-all wave's bake: the datacenter rolled back, its
    hosts ran the previous build again with the new one still staged, reported `staged` about
    the new one, and the rollback never finished."""
    rollout = DcRollout.start("new", "old", ["h0", "h1"], Strategy(steps=(1, 1.0), min_healthy=0.9, bake_s=0))
    rollout.phase = DcPhase.ROLLING_BACK     # wave 1 (h0) moved, then went bad
    back = hosts(state=H.STAGED, active="old", target="old", stage_build="new")
    for v in back.values():
        v.acked_target = "new"           # its report is about the staged build
    plan = reconcile(snap(hosts=back, rollout=rollout, staged_dcs={"us-a", "eu-a"}))
    assert plan.stages == {"h0": "", "h1": ""} and plan.rollout.phase == DcPhase.ROLLING_BACK
    settled = hosts(state=H.ACTIVE, active="old", target="old")   # it took the staged build back
    plan = reconcile(snap(hosts=settled, rollout=plan.rollout, staged_dcs={"us-a", "eu-a"}))
    assert plan.rollout.phase == DcPhase.ROLLED_BACK and plan.status[0] == D.ROLLED_BACK


def test_a_region_that_joined_neither_blocks_activation_nor_turns_back_a_started_rollout():
    """Found killing the head in a stage-all wave's bake and bringing the stack back with a third
    region: the new region held the replica (a backfill) but had not staged, so activation was
    no longer allowed, and the datacenter's rollout, already baking, stopped counting as moving:
    its wave host was sent back to the build the datacenter ran, and the wave failed its bake."""
    joined = {**REGIONS, "ap": ["ap-a"]}
    wave = hosts(state=H.ACTIVE, active="old", target="old")
    wave["h0"] = HostView("h0", "new", H.ACTIVE, "new", "new", "new")
    rollout = DcRollout.start("new", "old", ["h0", "h1"], Strategy(steps=(1, 1.0), min_healthy=0.9, bake_s=10))
    rollout.phase, rollout.bake_until = DcPhase.BAKING, 105.0
    plan = reconcile(snap(hosts=wave, rollout=rollout, dcs_by_region=joined, holding={"us", "eu", "ap"},
                          staged_dcs={"us-a", "eu-a"}))
    assert "h0" not in plan.targets and plan.rollout.phase == DcPhase.BAKING and plan.moving
    fresh = reconcile(snap(hosts=hosts(state=H.STAGED, stage_build="new"), dcs_by_region=joined,
                           holding={"us", "eu", "ap"}, staged_dcs={"us-a", "eu-a"}, staging_began=90.0))
    assert fresh.targets == {"h0": "new"}    # ap-a was not staged: the deployment was made for us and eu
