"""The coordinator and the simulator take their steps from one reconcile: the same situation,
read from real Redis by the coordinator and from the model by the simulator, gives the same
snapshot and the same plan at every step of a whole deployment."""
from dataclasses import asdict

import redis

from gantry.actors.rollout.coordinator import Coordinator
from gantry.rollout.reconcile import reconcile
from gantry.sim.run import NEW, OLD, Simulation
from gantry.sim.scenario import Scenario
from gantry.state import State, keys
from gantry.statuses import DeploymentStatus, HostState

REGIONS = {"r0": ["r0-dc0"], "r1": ["r1-dc0"]}
HOSTS = {dc: [f"{dc}-h{i}" for i in range(4)] for dcs in REGIONS.values() for dc in dcs}
SIZE = 100_000_000
STRATEGY = {"steps": [1, 0.5, 1.0], "minHealthy": 0.9, "bakeS": 5, "stage": "all", "regionWaves": [["r0"], ["r1"]]}


class Clock:
    t = 1_000.0

    def __call__(self):
        return self.t


def redis_world(url, clock):
    r = redis.Redis.from_url(url)
    r.flushdb()
    r.hset(keys.build(NEW), mapping={"buildID": NEW, "projectName": "sim", "buildStatus": "DEPLOYING",
                                     "artifactSize": SIZE, "artifactDigest": "blake3:" + "a" * 64})
    state = State(url, clock=lambda: int(clock() * 1000))
    coords = {dc: Coordinator(dc, region, REGIONS, state, clock=clock)
              for region, dcs in REGIONS.items() for dc in dcs}
    for dc, hosts in HOSTS.items():
        region = next(r for r, dcs in REGIONS.items() if dc in dcs)
        for h in hosts:
            state.hosts.set_target(dc, h, "sim", OLD)
            state.hosts.report(h, region, dc, {"address": f"{h}:7000"},
                               {"sim": {"state": HostState.ACTIVE, "activeBuildID": OLD, "ackedTargetBuildID": OLD}})
        state.deployments.set_dc_current("sim", dc, OLD)
    for region in REGIONS:
        r.hset(keys.repl_row(NEW, region), mapping={"region": region, "replicationStatus": "REPLICATED"})
    fields = state.deployments.create("sim", NEW, OLD, STRATEGY, list(REGIONS), "test")
    return state, coords, fields


def sim_world(fields):
    fleet = [{"hostID": h, "region": next(r for r, dcs in REGIONS.items() if dc in dcs), "dc": dc, "rack": ""}
             for dc, hosts in HOSTS.items() for h in hosts]
    sim = Simulation(Scenario(hosts=len(fleet), size_bytes=SIZE, steps=(1, 0.5, 1.0), bake_s=5, region_waves=[["r0"], ["r1"]],
                              replicated=True), fleet, regions=list(REGIONS))
    sim._replicate()
    sim.deployment.deployment_id, sim.deployment.project = fields["deploymentID"], "sim"
    return sim


def comparable(snap):
    d = asdict(snap)
    d["holding"], d["staged_dcs"] = sorted(d["holding"]), sorted(d["staged_dcs"])
    return d


def obey(dc, plan, report):
    """Each host does what it was told and reports it, in both worlds alike."""
    for h, build in plan.stages.items():
        if build:
            report(dc, h, HostState.STAGED, OLD, build)
    for h, build in plan.targets.items():
        report(dc, h, HostState.ACTIVE, build, build)


def test_coordinator_and_simulator_make_the_same_plan_at_every_step(redis_url):
    clock = Clock()
    state, coords, fields = redis_world(redis_url, clock)
    sim = sim_world(fields)
    dcs = {dc.name: dc for dc in sim.dcs}

    def report_redis(dc, h, st, active, about):
        region = coords[dc].region
        state.hosts.report(h, region, dc, {"address": f"{h}:7000"},
                           {"sim": {"state": st, "activeBuildID": active, "ackedTargetBuildID": about}})

    def report_sim(dc, h, st, active, about):
        dcs[dc].reported(sim.by_id[h], st, about, active)

    plans = 0
    for _ in range(40):
        clock.t += 3
        sim.events.now = clock.t
        for dc, coord in coords.items():
            dep = next(d for d in state.deployments.desired_deployments())
            assert dep.status == sim.deployment.status
            if not dep.status.active:
                continue
            coord.hosts.in_dc()
            mine = coord.snapshot(dep, clock.t)
            theirs = dcs[dc].snapshot()
            assert comparable(mine) == comparable(theirs)
            plan_c, plan_s = reconcile(mine), reconcile(theirs)
            assert asdict(plan_c) == asdict(plan_s)
            plans += bool(plan_c.targets or plan_c.stages or plan_c.outcome or plan_c.status)
            coord._apply("sim", plan_c, dep, mine.stage_deadline_s)
            dcs[dc].apply(plan_s)
            obey(dc, plan_c, report_redis)
            obey(dc, plan_s, report_sim)
    assert state.deployments.get(fields["deploymentID"])["status"] == DeploymentStatus.COMPLETED
    assert sim.status == DeploymentStatus.COMPLETED and plans >= 8   # staged, 3 waves in each of 2 dcs, done
