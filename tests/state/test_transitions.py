"""Every status table of `gantry.statuses`, walked move by move through the Python check and
through the Lua scripts that make the moves, on a real redis-server: a script allows exactly
the moves its table allows. And a changed table changes what the scripts allow."""
import itertools
import json

import pytest
import redis

from gantry import statuses
from gantry.state import State, TransitionRefused, keys, scripts
from gantry.state.builds import Builds
from gantry.state.deployments import Deployments
from gantry.statuses import (BUILD_FROM, DEPLOYMENT_FROM, HOST_FROM, REPLICATION_FROM, BuildStatus, DeploymentStatus,
                             HostState, ReplicationStatus, allowed)


@pytest.fixture
def state(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return State(redis_url)


def pairs(kind):
    return list(itertools.product(kind, kind))


def test_the_python_check_reads_the_tables():
    for kind, table in statuses.TABLES.items():
        for cur, to in pairs(kind):
            assert allowed(cur, to) == (cur in table[to])


def test_build_moves_are_the_tables(state):
    r = state.r
    for i, (cur, to) in enumerate(pairs(BuildStatus)):
        b = f"b{i}"
        r.hset(keys.build(b), mapping={"buildID": b, "projectName": "p", "buildStatus": cur, "queueBase": 0})
        try:
            state.builds.transition(b, to)
            moved = True
        except TransitionRefused:
            moved = False
        assert moved == (cur in BUILD_FROM[to]), (cur, to)
        assert r.hget(keys.build(b), "buildStatus") == (to if moved else cur)


def test_claiming_a_build_is_the_tables_move_to_building(state):
    r = state.r
    for cur in BuildStatus:
        b = f"c-{cur}"
        r.hset(keys.build(b), mapping={"buildID": b, "buildStatus": cur, "queueBase": 0})
        r.zadd(keys.queue(), {b: 1})
        assert state.builds.claim(b, "w1") == (cur in BUILD_FROM[BuildStatus.BUILDING]), cur


def test_deployment_moves_are_the_tables(state):
    r = state.r
    for i, (cur, to) in enumerate(pairs(DeploymentStatus)):
        d = f"d{i}"
        r.hset(keys.deploy(d), mapping={"deploymentID": d, "status": cur})
        moved = state.deployments.set_status(d, to, "why") is not None
        assert moved == (cur in DEPLOYMENT_FROM[to]), (cur, to)
        assert r.hget(keys.deploy(d), "status") == (to if moved else cur)


def test_replication_moves_are_the_tables(state):
    r, R = state.r, ReplicationStatus
    for cur in R:
        b = f"r-{cur}"
        r.hset(keys.build(b), mapping={"buildID": b, "buildStatus": BuildStatus.DEPLOYING, "replicationFailed": "0"})
        r.sadd(keys.repl_regions(b), "eu")

        def row(status):
            r.hset(keys.repl_row(b, "eu"), mapping={"region": "eu", "replicationStatus": status})

        def now():
            return r.hget(keys.repl_row(b, "eu"), "replicationStatus")

        row(cur)
        assert state.replication.retry(b, "eu", 0, "x") == (cur in REPLICATION_FROM[R.RETRYING]), cur
        for to in (R.REPLICATED, R.FAILED):
            row(cur)
            r.hset(keys.build(b), "buildStatus", BuildStatus.DEPLOYING)
            state.replication.finish(b, "eu", to == R.REPLICATED, "x")
            assert now() == (to if cur in REPLICATION_FROM[to] else cur), (cur, to)
        row(cur)
        restarted = state.replication.restart(b)
        assert bool(restarted) == (cur in REPLICATION_FROM[R.PENDING]), cur
    with pytest.raises(ValueError):
        state.replication.update("b", "eu", {"replicationStatus": R.REPLICATED})


def test_host_moves_outside_the_table_are_noted(state):
    """A host's report is its own word: written whatever it says, and a move the table does
    not allow is noted (`stateJump`)."""
    H = HostState
    for i, (cur, to) in enumerate(pairs(H)):
        if cur == to:
            continue
        h = f"h{i}"
        if cur == H.LOST:
            state.hosts.report(h, "us", "dc", {}, {"p": {"state": H.ACTIVE}})
            state.hosts.mark_lost("dc", h)
        else:
            state.hosts.report(h, "us", "dc", {}, {"p": {"state": cur}})
        state.hosts.report(h, "us", "dc", {}, {"p": {"state": to}})
        record = state.r.hgetall(keys.host_project("dc", h, "p"))
        assert record["state"] == to
        assert ("stateJump" in record) == (cur not in HOST_FROM[to]), (cur, to, record.get("stateJump"))


def test_a_changed_table_changes_what_the_scripts_allow(state, monkeypatch):
    D, B = DeploymentStatus, BuildStatus
    monkeypatch.setitem(DEPLOYMENT_FROM, D.PAUSED, frozenset())
    monkeypatch.setitem(BUILD_FROM, B.CANCELLED, frozenset({B.BUILDING}))
    scripts.source.cache_clear()
    try:
        deps, builds = Deployments(state.r, state.clock), Builds(state.r, state.clock)
        state.r.hset(keys.deploy("d"), mapping={"deploymentID": "d", "status": D.IN_PROGRESS})
        assert deps.set_status("d", D.PAUSED) is None   # IN_PROGRESS -> PAUSED: no longer a move
        state.r.hset(keys.build("q"), mapping={"buildID": "q", "buildStatus": B.QUEUED, "queueBase": 0})
        with pytest.raises(TransitionRefused):
            builds.transition("q", B.CANCELLED)           # QUEUED -> CANCELLED: no longer either
        assert "QUEUED" not in json.dumps(scripts.lua_table("BuildStatus").split('["CANCELLED"]')[1].split("}")[0])
    finally:
        monkeypatch.undo()
        scripts.source.cache_clear()
    assert Deployments(state.r, state.clock).set_status("d", D.PAUSED) == D.IN_PROGRESS   # the real table again
