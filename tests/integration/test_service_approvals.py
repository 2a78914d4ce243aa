"""Approvals at the API's operations (serve_app/approval_ops.py) against a real redis-server:
who may approve a waiting deployment's gate, what is recorded, and when it goes on."""
from test_service import error_of, svc, who  # noqa: F401  (svc: the fixture)
from test_service_freeze import built

from gantry.statuses import DeploymentStatus as D

GATED = {"steps": [1, 1.0], "bakeS": 0, "approve": {"before": "wave:2", "count": 2, "notRequester": True}}


def test_a_gate_needs_its_count_of_deployers_other_than_the_requester_and_each_is_audited(svc):
    admin, dana, b = who(svc, "root", (), admin=True), who(svc), built(svc)
    pat, lee = who(svc, "pat", ("web",), roles=("deployer",)), who(svc, "lee", ("web",), roles=("deployer",))
    requester = who(svc, "sam", ("web",), roles=("deployer",))
    assert error_of(svc.op_create_deployment, dana, "web", {"buildID": b, "strategy": {
        "approve": {"before": "wave:9"}}}).error == "approval gate beyond the last wave"
    dep_id = svc.op_create_deployment(requester, "web", {"buildID": b, "strategy": GATED})["deploymentID"]
    assert error_of(svc.op_approve_deployment, pat, "web", dep_id).error == "nothing to approve"   # not waiting yet
    # the reconcile of a datacenter at the gate sets this (tests/rollout/test_approval_gates.py)
    svc.state.deployments.set_status(dep_id, D.WAITING_APPROVAL, "approval needed before wave:2 (us-east-a is there)",
                                     fields={"awaiting": "wave:2"})
    shown = svc.op_get_deployment(dana, "web", dep_id)
    assert shown["approval"] == {"gate": "wave:2", "needed": 2, "approvals": [],
                                 "mayApprove": "2 different people with the deployer role, not the requester"}
    assert "deployer role" in error_of(svc.op_approve_deployment, dana, "web", dep_id).detail
    assert "another person" in error_of(svc.op_approve_deployment, requester, "web", dep_id).detail
    out = svc.op_approve_deployment(pat, "web", dep_id, {"comment": "canary looks fine"})
    assert out["status"] == D.WAITING_APPROVAL and [a["user"] for a in out["approval"]["approvals"]] == ["pat"]
    assert "already" in error_of(svc.op_approve_deployment, pat, "web", dep_id).detail
    assert error_of(svc.op_approve_deployment, lee, "web", dep_id, {"comment": "x" * 501}).status == 422
    out = svc.op_approve_deployment(lee, "web", dep_id)
    assert out["status"] == D.IN_PROGRESS and out["reason"] == "wave:2 approved by pat, lee"
    entries = [e for e in svc.op_audit(admin, project="web")["entries"] if e["action"] == "deployment.approve"]
    assert [(e["user"], e["target"], e["detail"]["gate"]) for e in entries] == [("lee", dep_id, "wave:2"),
                                                                                ("pat", dep_id, "wave:2")]
    assert entries[1]["detail"]["comment"] == "canary looks fine"
