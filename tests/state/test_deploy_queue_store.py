"""The deploy queue over a real redis-server: a project runs one deployment at a time; by its
concurrency a new one waits its turn (queue), drops the queued ones for itself (supersede), or
is refused (reject); a rollback (preempt) goes first."""
import pytest
import redis

from gantry.state import State
from gantry.state.deployments import DeployBusy
from gantry.statuses import Concurrency as C, DeploymentStatus as D

FAST = {"steps": [1.0], "minHealthy": 0.9, "bakeS": 0}


@pytest.fixture
def deps(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return State(redis_url).deployments


def make(deps, build, concurrency=C.QUEUE):
    return deps.create("web", build, None, FAST, ["us"], "dana", concurrency=concurrency)


def status(deps, d):
    return deps.get(d["deploymentID"])["status"]


def test_queued_deployments_run_one_after_the_other_in_order(deps):
    first, second, third = make(deps, "b1"), make(deps, "b2"), make(deps, "b3")
    assert (first["status"], second["status"], third["status"]) == (D.IN_PROGRESS, D.QUEUED, D.QUEUED)
    assert (second["queuePosition"], third["queuePosition"]) == (1, 2)
    assert deps.desired("web")["deploymentID"] == first["deploymentID"]
    assert deps.set_status(first["deploymentID"], D.COMPLETED) == D.IN_PROGRESS
    assert status(deps, second) == D.IN_PROGRESS and deps.desired("web")["deploymentID"] == second["deploymentID"]
    assert deps.get(second["deploymentID"])["previousBuildID"] == "b1"   # what it rolls back to is chosen now
    assert deps.queue("web") == [third["deploymentID"]] and status(deps, third) == D.QUEUED
    deps.set_status(second["deploymentID"], D.ROLLED_BACK, "wave 1 failed")
    assert status(deps, third) == D.IN_PROGRESS and deps.get(third["deploymentID"])["previousBuildID"] == "b1"


def test_a_queued_deployment_aborted_is_skipped_and_resume_cannot_start_it_early(deps):
    first, second, third = make(deps, "b1"), make(deps, "b2"), make(deps, "b3")
    assert deps.set_status(second["deploymentID"], D.IN_PROGRESS, only_from=(D.PAUSED,)) is None   # a RESUME
    assert deps.set_status(second["deploymentID"], D.ABORTED, "aborted by user") == D.QUEUED
    assert status(deps, third) == D.QUEUED   # aborting a queued one ends nobody's turn
    deps.set_status(first["deploymentID"], D.COMPLETED)
    assert status(deps, third) == D.IN_PROGRESS and deps.queue("web") == []


def test_supersede_drops_the_queued_ones_for_the_newest(deps):
    first, middle = make(deps, "b1", C.SUPERSEDE), make(deps, "b2", C.SUPERSEDE)
    newest = make(deps, "b3", C.SUPERSEDE)
    assert status(deps, first) == D.IN_PROGRESS   # the one under way goes on
    assert status(deps, middle) == D.SUPERSEDED and deps.get(middle["deploymentID"])["reason"] == \
        f"superseded by {newest['deploymentID']}"
    assert deps.queue("web") == [newest["deploymentID"]] and newest["queuePosition"] == 1


def test_reject_refuses_while_one_is_under_way_and_not_after(deps):
    first = make(deps, "b1", C.REJECT)
    with pytest.raises(DeployBusy) as e:
        make(deps, "b2", C.REJECT)
    assert str(e.value) == first["deploymentID"] and len(deps.page("web", 10, None)[0]) == 1   # nothing made
    deps.set_status(first["deploymentID"], D.COMPLETED)
    assert make(deps, "b2", C.REJECT)["status"] == D.IN_PROGRESS


def test_a_rollback_preempts_the_running_one_and_the_queue_waits_behind_it(deps):
    first, queued = make(deps, "b1"), make(deps, "b2")
    back = make(deps, "b0", C.PREEMPT)
    assert back["status"] == D.IN_PROGRESS and deps.desired("web")["deploymentID"] == back["deploymentID"]
    assert status(deps, first) == D.SUPERSEDED and status(deps, queued) == D.QUEUED
    deps.set_status(back["deploymentID"], D.COMPLETED)
    assert status(deps, queued) == D.IN_PROGRESS


def test_a_writer_that_died_between_the_status_and_the_promotion_is_covered_by_the_next_tick(deps):
    first, second = make(deps, "b1"), make(deps, "b2")
    # the status alone, as a process that died before promoting would have left it
    deps._status(keys=[f"gantry:deploy:{first['deploymentID']}", "a", "b", "c", "d", "gantry:events"],
                 args=[D.COMPLETED, "", "", 1, "", ""])
    assert status(deps, second) == D.QUEUED
    deps.promote_waiting(["web"])
    assert status(deps, second) == D.IN_PROGRESS
    deps.promote_waiting(["web"])   # nothing more waits: nothing changes
    assert deps.desired("web")["deploymentID"] == second["deploymentID"]


def test_a_queued_deployment_whose_build_expired_meanwhile_does_not_start(deps):
    first, second, third = make(deps, "b1"), make(deps, "b2"), make(deps, "b3")
    deps.r.hset("gantry:build:b2", "buildStatus", "EXPIRED")   # retention, in the gap before it could see the queue
    deps.set_status(first["deploymentID"], D.COMPLETED)
    gone = deps.get(second["deploymentID"])
    assert gone["status"] == D.ABORTED and "expired while it waited" in gone["reason"]
    assert status(deps, third) == D.IN_PROGRESS
