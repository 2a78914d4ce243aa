"""Approval gates in the reconcile (no Redis): a datacenter holds before a gated wave or region
wave, the deployment waits (WAITING_APPROVAL, naming the gate), and an approval lets it go on."""
import pytest
from pydantic import ValidationError

from gantry.models import StrategyIn
from gantry.records import Deployment, HostView
from gantry.rollout import approvals as rules
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.reconcile import Snapshot, reconcile
from gantry.statuses import DcPhase, DeploymentStatus as D, HostState as H

GATE = {"before": "wave:2", "role": "deployer", "count": 1, "notRequester": False}


def hosts_on(build_of: dict[str, str]) -> dict[str, HostView]:
    return {h: HostView(h, b, H.ACTIVE, b, b, b) for h, b in build_of.items()}


def snap(strategy, hosts, rollout=None, status=D.IN_PROGRESS, approved=(), region="us", outcomes=None,
         awaiting="", now=100.0):
    dep = Deployment("d1", "web", "new", "old", status, strategy, ["us", "eu"], awaiting=awaiting)
    return Snapshot(dc=f"{region}-a", region=region, dcs_by_region={"us": ["us-a"], "eu": ["eu-a"]}, deployment=dep,
                    hosts=hosts, holding={"us", "eu"}, staged_dcs=set(), outcomes=outcomes or {}, rollout=rollout,
                    current="old", now=now, approved=set(approved))


def strategy(*gates, region_waves=(("us",), ("eu",))):
    return {"steps": [1, 1.0], "minHealthy": 1.0, "bakeS": 0, "stage": "wave",
            "regionWaves": [list(w) for w in region_waves], "approve": list(gates)}


def test_a_wave_gate_holds_after_the_canary_until_approved():
    s = strategy(GATE)
    plan = reconcile(snap(s, hosts_on({"h0": "old", "h1": "old"})))
    assert plan.targets == {"h0": "new"} and plan.status is None      # the canary wave is not gated
    canary_up = hosts_on({"h0": "new", "h1": "old"})
    plan = reconcile(snap(s, canary_up, plan.rollout, now=101.0))
    assert plan.rollout.wave == 0 and plan.rollout.awaiting == "wave:2" and not plan.targets
    assert plan.status == (D.WAITING_APPROVAL, "approval needed before wave:2 (us-a is there)")
    assert plan.awaiting == "wave:2"
    # still waiting: it stays there and says nothing new
    again = reconcile(snap(s, canary_up, plan.rollout, status=D.WAITING_APPROVAL, awaiting="wave:2", now=102.0))
    assert again.status is None and not again.targets and again.rollout.wave == 0
    # approved: any datacenter's reconcile moves the deployment on, and this one starts wave 2
    go = reconcile(snap(s, canary_up, again.rollout, status=D.WAITING_APPROVAL, awaiting="wave:2",
                        approved={"wave:2"}, now=103.0))
    assert go.status == (D.IN_PROGRESS, "wave:2 approved")
    assert go.rollout.wave == 1 and go.targets == {"h1": "new"}


def test_a_gate_before_the_first_wave_moves_no_host():
    s = strategy({**GATE, "before": "wave:1"})
    plan = reconcile(snap(s, hosts_on({"h0": "old", "h1": "old"})))
    assert plan.targets == {} and plan.status[0] == D.WAITING_APPROVAL and plan.awaiting == "wave:1"


def test_a_region_wave_gate_holds_the_later_region_only():
    s = strategy({**GATE, "before": "regionWave:2"})
    first = reconcile(snap(s, hosts_on({"h0": "old"})))
    assert first.targets == {"h0": "new"} and first.status is None
    # eu waits for us to be DONE, then for the gate
    early = reconcile(snap(s, hosts_on({"e0": "old"}), region="eu"))
    assert early.status is None and not early.targets
    gated = reconcile(snap(s, hosts_on({"e0": "old"}), region="eu", outcomes={"us-a": DcPhase.DONE}))
    assert gated.status == (D.WAITING_APPROVAL, "approval needed before regionWave:2 (eu-a is there)")
    assert gated.rollout is None and not gated.targets
    go = reconcile(snap(s, hosts_on({"e0": "old"}), region="eu", outcomes={"us-a": DcPhase.DONE},
                        status=D.WAITING_APPROVAL, awaiting="regionWave:2", approved={"regionWave:2"}))
    assert go.status[0] == D.IN_PROGRESS and go.targets == {"e0": "new"}


def test_a_paused_deployment_at_a_gate_stays_paused():
    s = strategy(GATE)
    canary_up = hosts_on({"h0": "new", "h1": "old"})
    rollout = DcRollout.from_dict({**reconcile(snap(s, hosts_on({"h0": "old", "h1": "old"}))).rollout.to_dict()})
    plan = reconcile(snap(s, canary_up, rollout, status=D.PAUSED, approved={"wave:2"}))
    assert plan.status is None and plan.rollout.phase == DcPhase.PAUSED and not plan.targets


def test_who_may_approve():
    gate = {**GATE, "count": 2, "notRequester": True}
    assert rules.refusal(gate, "bob", frozenset(), False, "alice", []) == "approving needs the deployer role"
    assert rules.refusal(gate, "bob", frozenset({"deployer"}), False, "alice", []) is None
    assert rules.refusal(gate, "root", frozenset(), True, "alice", []) is None         # admins have every role
    assert "another person" in rules.refusal(gate, "alice", frozenset({"deployer"}), False, "alice", [])
    given = [{"user": "bob"}]
    assert "already" in rules.refusal(gate, "bob", frozenset({"deployer"}), False, "alice", given)
    assert not rules.satisfied(gate, given + [{"user": "bob"}])     # the same person twice is one approval
    assert rules.satisfied(gate, given + [{"user": "carol"}])
    assert rules.describe(gate) == "2 different people with the deployer role, not the requester"


def test_the_strategy_takes_one_gate_or_a_list_and_refuses_nonsense():
    one = StrategyIn.model_validate({"approve": {"before": "regionWave:2", "notRequester": True}})
    assert [g.before for g in one.approve] == ["regionWave:2"] and one.approve[0].role == "deployer"
    for bad in ({"before": "wave:0"}, {"before": "wave:2/../x"}, {"before": "canary"}, {"before": "wave:2", "count": 9},
                [{"before": "wave:2"}, {"before": "wave:2"}], {"before": "wave:2", "role": "root"}):
        with pytest.raises(ValidationError):
            StrategyIn.model_validate({"approve": bad})
    assert rules.wave_gates({"approve": [{"before": "wave:3"}, {"before": "regionWave:2"}, {"before": "wave:1"}]}) == (0, 2)
