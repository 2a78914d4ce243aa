"""Deploy freeze windows at the API's operations (serve_app/freeze_ops.py) against a real
redis-server: a window refuses a deploy naming itself, an admin's override with a reason
passes and is audited, a rollback is never frozen. (A stack-wide window is tested here rather
than on the shared stack, where it would freeze every other test's deploys.)"""
import json
from datetime import datetime, timedelta, timezone

from test_service import error_of, svc, who  # noqa: F401  (svc: the fixture)


def built(svc) -> str:
    """A build of "web" whose artifact is published (deployable)."""
    b = svc.op_create_build(who(svc), "web", {"commitSHA": "c" * 40})["buildID"]
    svc.state.builds.claim_next("owner")
    svc.state.replication.publish(b, "owner", {"artifactDigest": "blake3:" + "0" * 64}, "us-east", ["eu-west"],
                                  {"bytesTransferred": 1, "chunksTransferred": 1, "bytesSkipped": 0, "chunksSkipped": 0})
    return b


def test_a_project_window_refuses_a_deploy_and_an_admins_override_with_a_reason_passes_audited(svc):
    admin, dana, b = who(svc, "root", (), admin=True), who(svc), built(svc)
    now = datetime.now(timezone.utc)
    window = {"reason": "incident 42", "start": (now - timedelta(minutes=1)).isoformat(),
              "end": (now + timedelta(minutes=1)).isoformat()}
    assert svc.op_put_project(admin, "web", {"repoURL": "/src/web", "freeze": [window]})["project"]["freeze"][0]["reason"] == "incident 42"
    e = error_of(svc.op_create_deployment, dana, "web", {"buildID": b})
    assert e.status == 409 and e.error == "deploys are frozen"
    assert "project freeze window 'incident 42'" in e.detail and f"until {now.year}" in e.detail
    assert svc.op_list_deployments(dana, "web")["deployments"] == []   # refused: nothing made
    assert error_of(svc.op_create_deployment, dana, "web", {"buildID": b, "overrideFreeze": True,
                                                            "reason": "I say so"}).status == 403
    assert error_of(svc.op_create_deployment, admin, "web", {"buildID": b, "overrideFreeze": True, "reason": " "}).status == 400
    assert svc.op_create_deployment(dana, "web", {"buildID": b}, dryRun=True)["status"]   # a dry run changes nothing
    dep = svc.op_create_deployment(admin, "web", {"buildID": b, "overrideFreeze": True, "reason": "the fix for 42",
                                                  "strategy": {"steps": [1.0], "bakeS": 0}})
    entry = next(x for x in svc.op_audit(admin, project="web")["entries"] if x["action"] == "deployment.create")
    assert entry["target"] == dep["deploymentID"] and entry["user"] == "root"
    detail = entry["detail"] if isinstance(entry["detail"], dict) else json.loads(entry["detail"])
    assert detail["freezeOverride"]["reason"] == "the fix for 42" and detail["freezeOverride"]["window"] == "incident 42"
    back = svc.op_rollback(dana, "web", {"buildID": b})   # never frozen
    assert back["status"] == "IN_PROGRESS"


def test_a_stack_wide_recurring_window_freezes_every_project_until_an_admin_clears_it(svc):
    admin, dana, b = who(svc, "root", (), admin=True), who(svc), built(svc)
    every_minute = {"reason": "all hands", "cron": "* * * * *", "durationS": 120, "timeZone": "Europe/Berlin"}
    assert error_of(svc.op_put_freeze, dana, {"windows": [every_minute]}).status == 403
    bad = error_of(svc.op_put_freeze, admin, {"windows": [{"reason": "x", "cron": "sometimes", "durationS": 1}]})
    assert bad.status == 422 and svc.op_get_freeze(admin)["windows"] == []   # refused: nothing changed
    shown = svc.op_put_freeze(admin, {"windows": [every_minute]})
    assert shown["openNow"]["reason"] == "all hands" and shown["windows"][0]["timeZone"] == "Europe/Berlin"
    e = error_of(svc.op_create_deployment, dana, "web", {"buildID": b})
    assert e.status == 409 and "stack freeze window 'all hands'" in e.detail
    assert any(x["action"] == "freeze.set" for x in svc.op_audit(admin)["entries"])
    svc.op_put_freeze(admin, {"windows": []})
    assert svc.op_create_deployment(dana, "web", {"buildID": b})["status"] == "IN_PROGRESS"


def test_a_deploy_that_waits_is_queued_until_the_window_ends_and_a_deployer_may_override(svc):
    admin, dana, b = who(svc, "root", (), admin=True), who(svc), built(svc)
    now = datetime.now(timezone.utc)
    window = {"reason": "release week", "start": (now - timedelta(minutes=1)).isoformat(),
              "end": (now + timedelta(minutes=5)).isoformat()}
    svc.op_put_project(admin, "web", {"repoURL": "/src/web", "freeze": [window], "deploy": {"duringFreeze": "wait"}})
    held = svc.op_create_deployment(dana, "web", {"buildID": b, "strategy": {"steps": [1.0], "bakeS": 0}})
    assert held["status"] == "QUEUED" and held["queuePosition"] == 1
    dep = svc.op_get_deployment(dana, "web", held["deploymentID"])
    assert dep["reason"].startswith("waits for the project freeze window 'release week'")
    deps = svc.state.deployments
    assert deps.promote_next("web") is None and deps.get(held["deploymentID"])["status"] == "QUEUED"   # still frozen
    entry = next(x for x in svc.op_audit(admin, project="web")["entries"] if x["action"] == "deployment.create")
    assert "release week" in entry["detail"]["heldByFreeze"]
    # a per-deployment choice beats the project's: refuse now
    assert error_of(svc.op_create_deployment, dana, "web", {"buildID": b, "waitForFreeze": False}).status == 409
    # the window ends (here: is taken away): the next tick's promotion starts it
    svc.op_put_project(admin, "web", {"repoURL": "/src/web", "freeze": []})
    assert deps.promote_next("web") == held["deploymentID"]
    assert deps.get(held["deploymentID"])["status"] == "IN_PROGRESS" and deps.get(held["deploymentID"])["reason"] == ""
    # a deployer (not an admin) may override a window, with a reason
    svc.op_put_project(admin, "web", {"repoURL": "/src/web", "freeze": [window], "deploy": {"duringFreeze": "refuse"}})
    deployer = who(svc, "pat", ("web",), roles=("deployer",))
    over = svc.op_create_deployment(deployer, "web", {"buildID": b, "overrideFreeze": True, "reason": "hotfix"})
    assert over["status"] == "QUEUED"   # behind the one under way, and not held by the window at its turn
    assert deps.get(over["deploymentID"])["freezeOverride"]
    deps.set_status(held["deploymentID"], "COMPLETED")
    assert deps.get(over["deploymentID"])["status"] == "IN_PROGRESS"
