"""The datacenter rollout state machine, driven by simulated host snapshots."""
from gantry.rollout.dc_rollout import BAKING, DONE, PAUSED, ROLLED_BACK, ROLLING, ROLLING_BACK, DcRollout, HostView
from gantry.rollout.waves import Strategy

STRATEGY = Strategy(steps=(1, 0.10, 0.50, 1.0), min_healthy=0.9, bake_s=10)


class Fleet:
    """Hosts that do what they are told, except those set to fail on a given build."""

    def __init__(self, n, running="old", fail_on=None):
        self.hosts = {f"h{i:02d}": HostView(f"h{i:02d}", running, "active", running, running, running)
                      for i in range(n)}
        self.fail_on = fail_on or {}

    def apply(self, targets):
        for h, build in targets.items():
            v = self.hosts[h]
            v.target_build = v.acked_target = v.sent_target = build
            if self.fail_on.get(h) == build:
                v.state = "failed"
            else:
                v.active_build, v.state = build, "active"


def run(rollout, fleet, until=100, dt=5):
    now, seen = 0.0, []
    for _ in range(until):
        fleet.apply(rollout.step(fleet.hosts, now))
        seen.append((rollout.phase, rollout.wave))
        if rollout.phase in (DONE, ROLLED_BACK):
            break
        now += dt
    return seen


def test_waves_canary_first_and_all_hosts_end_on_the_build():
    fleet = Fleet(20)
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    assert [len(w) for w in r.waves] == [1, 1, 8, 10]
    first = r.step(fleet.hosts, 0)
    assert first == {"h00": "new"}          # the canary alone
    fleet.apply(first)
    assert r.step(fleet.hosts, 1) == {} and r.phase == BAKING
    assert r.step(fleet.hosts, 5) == {}     # still baking
    assert r.step(fleet.hosts, 11) == {"h01": "new"} and r.phase == ROLLING and r.wave == 1
    run(r, fleet)
    assert r.phase == DONE and all(v.active_build == "new" for v in fleet.hosts.values())


def test_a_failing_canary_rolls_the_datacenter_back():
    fleet = Fleet(10, fail_on={"h00": "new"})
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    run(r, fleet)
    assert r.phase == ROLLED_BACK and "1 of 1 hosts failed" in r.reason
    assert all(v.active_build == "old" for v in fleet.hosts.values() if v.state == "active")
    assert all(v.target_build in ("old", None) or h == "h00" for h, v in fleet.hosts.items())


def test_the_gate_tolerates_failures_above_the_minimum():
    # 20 hosts; wave 4 has 10 hosts, one failure there is 90% healthy: passes
    fleet = Fleet(20, fail_on={"h19": "new"})
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    run(r, fleet)
    assert r.phase == DONE


def test_two_failures_in_a_wave_of_eight_roll_back_every_moved_host():
    fleet = Fleet(20, fail_on={"h03": "new", "h04": "new"})
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    run(r, fleet)
    assert r.phase == ROLLED_BACK and r.wave == 2
    assert fleet.hosts["h00"].active_build == "old" and fleet.hosts["h01"].active_build == "old"
    assert all(v.target_build == "old" for h, v in fleet.hosts.items() if h not in ("h03", "h04"))


def test_pause_holds_and_resume_continues():
    fleet = Fleet(10)
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    fleet.apply(r.step(fleet.hosts, 0))
    r.pause()
    assert r.phase == PAUSED and r.step(fleet.hosts, 1000) == {}
    r.resume()
    assert r.phase == ROLLING
    run(r, fleet)
    assert r.phase == DONE


def test_state_survives_a_round_trip_mid_rollout():
    fleet = Fleet(10)
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    for t in range(3):
        fleet.apply(r.step(fleet.hosts, t * 11))
    again = DcRollout.from_dict(r.to_dict())
    assert again == r
    run(again, fleet)
    assert again.phase == DONE


def test_first_deploy_with_nothing_to_roll_back_to_stops_and_says_so():
    fleet = Fleet(3, running=None, fail_on={"h00": "new"})
    r = DcRollout.start("new", None, list(fleet.hosts), STRATEGY)
    run(r, fleet)
    assert r.phase == ROLLED_BACK and "no previous build" in r.reason


def test_immediate_strategy_moves_everyone_at_once():
    fleet = Fleet(6)
    r = DcRollout.start("old2", "new", list(fleet.hosts), Strategy.immediate())
    assert len(r.step(fleet.hosts, 0)) == 6


def test_lost_host_counts_against_the_gate():
    fleet = Fleet(1)
    r = DcRollout.start("new", "old", list(fleet.hosts), STRATEGY)
    r.step(fleet.hosts, 0)
    fleet.hosts["h00"].state = "lost"
    r.step(fleet.hosts, 1)
    assert r.phase in (ROLLING_BACK, ROLLED_BACK)


def test_a_report_from_before_the_host_was_told_does_not_count():
    """The host still shows the build it is about to leave: a rollback to that build must wait
    for a report made after the host got the new target, or it would end while the host moves."""
    rollout = DcRollout.start("old", "new", ["h0"], Strategy(steps=(1.0,), min_healthy=1.0, bake_s=0))
    host = HostView("h0", "old", "active", "new", acked_target="new", sent_target="new")   # about to switch
    assert rollout.step({"h0": host}, 0) == {"h0": "old"}
    assert rollout.phase == ROLLING                                    # its report predates "old"
    host.state = "downloading"                                         # it moved to "new" meanwhile ...
    host.acked_target = host.sent_target = host.target_build = "old"
    rollout.step({"h0": host}, 1)
    assert rollout.phase == ROLLING
    host.state, host.active_build = "active", "old"                    # ... and back, told "old"
    rollout.step({"h0": host}, 2)
    assert rollout.phase == DONE


def test_a_report_answered_with_another_target_does_not_count():
    """The report was made knowing "old", but the answer to it told the host "new" (another
    deployment moved it meanwhile): the host is about to leave "old", so it is not settled."""
    rollout = DcRollout.start("old", None, ["h0"], Strategy(steps=(1.0,), min_healthy=1.0, bake_s=0))
    host = HostView("h0", "old", "active", "old", acked_target="old", sent_target="new")
    assert rollout.step({"h0": host}, 0) == {}
    assert rollout.phase == ROLLING
    host.sent_target = "old"                                           # the next answer said "old"
    rollout.step({"h0": host}, 1)
    assert rollout.phase == DONE
