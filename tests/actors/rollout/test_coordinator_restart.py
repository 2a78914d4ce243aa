"""A coordinator that restarts with the whole control plane (see test_coordinator.py for the
world: real Redis, simulated hosts, a clock of its own)."""
from gantry.actors.rollout.coordinator import Coordinator
from gantry.state import keys
from test_coordinator import REGIONS, fleet, run, world  # noqa: F401  (world: the fixture)


def test_a_restarted_coordinator_calls_no_host_lost_before_its_hosts_can_reach_it(world):
    """A whole control plane restarting: the coordinator came up, and its hosts could report only
    once the API was up too. A CI run saw every host marked lost 10 s after the coordinator's
    start, and the deployment under way ROLLED_BACK. Now the silence of a host not heard since the
    restart counts from the first report any host made (three periods while there is none)."""
    store, coords, clock = world
    hosts = fleet(coords)
    run(coords, hosts, clock, rounds=2)
    c = Coordinator("us-east-a", "us-east", REGIONS, store, lost_after_s=30, clock=clock)
    first, *others = hosts["us-east"]
    for h in hosts["us-east"]:
        h.coord = c

    def lost():
        return {h["hostID"] for h in store.hosts.in_dc("us-east-a") if h.get("state") == "lost"}
    clock.t += 80   # more than a period, less than three: nobody could reach it yet
    c.tick()
    assert lost() == set()
    first.beat()    # the path works now
    clock.t += 25
    c.tick()
    assert lost() == set()   # the others get a full period from that first report
    for h in others[:2]:
        h.beat()
    first.beat()
    clock.t += 10
    c.tick()
    assert lost() == {others[2].id}   # a period after the first report, it is silent: lost
    c2 = Coordinator("us-east-a", "us-east", REGIONS, store, lost_after_s=30, clock=clock)   # restarted again
    clock.t += 89   # and with no report at all: three periods from the start
    c2.tick()
    assert lost() == {others[2].id}
    clock.t += 2
    c2.tick()
    assert lost() == {h.id for h in hosts["us-east"]}


def test_a_restarted_coordinator_judges_no_wave_before_its_hosts_report_again(world):
    """A restarted coordinator must not end a wave's bake on host records written before its start
    (here the wave host's last report is not settled): it drives a deployment under way only once
    every live host of its datacenter has reported since its start, or been marked lost. (Added
    while looking for why a head lost in a bake rolled the deployment back; the cause was another:
    see tests/rollout/test_reconcile.py, a region that joined.)"""
    store, coords, clock = world
    hosts = fleet(coords, n=2)
    dep = store.deployments.create("web", "b1", None, {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 5},
                                   list(REGIONS), "alice")["deploymentID"]
    run(coords, hosts, clock, rounds=3)
    assert store.deployments.load_rollout(dep, "us-east-a")["phase"] == "BAKING"
    c = Coordinator("us-east-a", "us-east", REGIONS, store, lost_after_s=30, clock=clock)
    for h in hosts["us-east"]:
        h.coord = c
    store.r.hset(keys.host_project("us-east-a", "us-east-0", "web"), "ackedTargetBuildID", "")   # unsettled
    clock.t += 10   # the bake is over while nobody could report
    c.tick()
    assert store.deployments.load_rollout(dep, "us-east-a")["phase"] == "BAKING"   # held, not rolled back
    run({**coords, "us-east": c}, hosts, clock, rounds=30)
    assert store.deployments.get(dep)["status"] == "COMPLETED"
