"""The fleet simulator against closed forms, and its faults and policies on small fleets."""
import math
import random
from types import SimpleNamespace

import pytest

from gantry.records import HostView
from gantry.rollout.activation import may_activate, staging
from gantry.sim.events import Events
from gantry.sim.network import Network, Resource
from gantry.sim.run import simulate
from gantry.sim.swarm import Download, Swarm
from gantry.sim.scenario import Scenario
from gantry.statuses import DcPhase

B, C, S = 1e6, 1e6, 16e6   # bytes/s, piece, artifact


def flat(n: int, **kw) -> Scenario:
    """One datacenter, no control-plane delays, one wave: what is left is the data plane."""
    base = dict(hosts=n, regions=1, dcs_per_region=1, size_bytes=S, nic_bps=B, origin_bps=B, chunk_bytes=C,
                steps=(1.0,), bake_s=0, min_healthy=1.0, rtt_dc_s=0, rtt_coord_s=0, msg_cost_s=0,
                unpack_bps=1e15, activate_s=0)
    return Scenario(**{**base, **kw})


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_origin_only_takes_n_s_over_b(n):
    r = simulate(flat(n, p2p=False))
    assert r["downloadSeconds"] == pytest.approx(n * S / B, rel=0.02)
    assert r["originBytes"] == pytest.approx(n * S, rel=1e-6) and r["peerBytes"] == 0


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64])
def test_one_seed_to_n_hosts_against_the_broadcast_bound(n):
    """No schedule beats S/B + (ceil(log2 N) - 1) c/B; gantry's policy (random order, two upload
    slots, four download workers, polls every 0.25 s) stays within 2x of it here (1.2x at 2 hosts,
    1.7x at 64), and the origin sends the artifact about once."""
    bound = S / B + (math.ceil(math.log2(n)) - 1) * C / B
    r = simulate(flat(n))
    assert bound <= r["downloadSeconds"] <= 2 * bound
    assert r["originBytes"] <= 1.2 * S
    assert r["status"] == "COMPLETED"


def test_a_single_host_fetches_one_handed_piece_at_a_time():
    """The tracker hands a host one origin piece at a time, and it asks again only after its
    refresh period: S/B plus up to a refresh period's wait per piece."""
    t = simulate(flat(1))["downloadSeconds"]
    assert S / B <= t <= S / B + (S / C) * 0.3


def test_faster_nics_are_never_slower():
    slow, fast = simulate(flat(16)), simulate(flat(16, nic_bps=4 * B, origin_bps=4 * B))
    assert fast["downloadSeconds"] < slow["downloadSeconds"]


def fleet(**kw) -> Scenario:
    base = dict(hosts=120, regions=3, dcs_per_region=2, size_bytes=64e6, nic_bps=100e6, origin_bps=100e6,
                bake_s=5)
    return Scenario(**{**base, **kw})


def test_stage_all_then_region_waves_in_order():
    r = simulate(fleet())
    assert r["status"] == "COMPLETED"
    regions = {p["region"]: p for p in r["perRegion"]}
    assert all(p["stagedSeconds"] <= r["stageSeconds"] for p in r["perRegion"])
    first_activation = min(t for t, _, _, what in r["marks"])
    assert first_activation >= r["stageSeconds"]          # nothing activates before all staged
    assert regions["r0"]["activeSeconds"] < min(regions[x]["activeSeconds"] for x in ("r1", "r2"))
    # the timeline ends with every host staged and active
    last = {region: (staged, active) for _, region, staged, active in r["timeline"]}
    assert all(v == (40, 40) for v in last.values())
    assert r["crossRegionBytes"] == 2 * 64e6


def test_stage_wave_activates_each_wave_as_it_downloads():
    r = simulate(fleet(stage="wave"))
    assert r["status"] == "COMPLETED" and r["stageSeconds"] is None


def test_bakes_add_up_along_the_critical_path():
    quick, baked = simulate(fleet(bake_s=0)), simulate(fleet(bake_s=30))
    # 4 waves in each of 2 region waves, each waits its bake
    assert baked["totalSeconds"] - quick["totalSeconds"] >= 8 * 30


def test_a_canary_analysis_longer_than_the_bake_holds_every_wave_for_it():
    baked, analysed = simulate(fleet(bake_s=10)), simulate(fleet(bake_s=10, analysis_s=40))
    assert analysed["status"] == "COMPLETED"
    # 4 waves in each of 2 region waves, each now waits 40 s rather than 10
    assert analysed["totalSeconds"] - baked["totalSeconds"] >= 8 * 30


def test_thirty_percent_failing_health_rolls_back():
    r = simulate(fleet(fail_health=0.3))
    assert r["status"] == "ROLLED_BACK" and "failed" in r["reason"]
    last = {region: active for _, region, _, active in r["timeline"]}
    assert all(v == 0 for v in last.values())             # every host back on the old build


def test_lost_hosts_hold_staging_until_the_coordinator_marks_them_lost():
    sc = fleet(lose=0.05, bake_s=0)
    r, clean = simulate(sc), simulate(fleet(bake_s=0))
    assert r["status"] == "COMPLETED"
    assert r["stageSeconds"] >= sc.lost_after_s > clean["stageSeconds"]


def test_a_store_down_at_the_start_fails_downloads_that_need_it():
    r = simulate(fleet(store_down=(1, 0.0, 20.0), bake_s=0))
    # hosts in region 1 that were handed origin pieces fail to stage; the rest wait for peers
    assert r["status"] in ("COMPLETED", "ROLLED_BACK")
    assert r["totalSeconds"] > simulate(fleet(bake_s=0))["totalSeconds"]


def test_same_seed_same_result():
    a, b = simulate(fleet(seed=7)), simulate(fleet(seed=7))
    assert a["totalSeconds"] == b["totalSeconds"] and a["events"] == b["events"]


def test_the_control_plane_load_follows_the_fleet():
    small, large = simulate(fleet(hosts=60)), simulate(fleet(hosts=240))
    assert large["peakControlMsgsPerS"] > 1.5 * small["peakControlMsgsPerS"]


def test_activation_policy_waits_for_staging_and_earlier_regions():
    dcs = {"a": ["a1"], "b": ["b1"]}
    waves = [["a"], ["b"]]
    holds = lambda r: True
    assert not may_activate("a", waves, dcs, holds, True, {"a1"}, {})               # b not staged
    assert may_activate("a", waves, dcs, holds, True, {"a1", "b1"}, {})
    assert not may_activate("b", waves, dcs, holds, True, {"a1", "b1"}, {})          # a not done
    assert may_activate("b", waves, dcs, holds, True, {"a1", "b1"}, {"a1": DcPhase.DONE})
    assert may_activate("b", waves, dcs, lambda r: r == "b", True, {"b1"}, {})       # a has no replica yet


def test_staging_tells_who_must_stage_and_when_it_is_done():
    views = [HostView("x", "old", "active", "old"), HostView("y", "new", "active", None),
             HostView("z", None, "lost", None)]
    tell, running, done = staging("new", views)
    assert tell == ["x"] and [h.host_id for h in running] == ["y"] and not done
    views[0].state, views[0].acked_target, views[0].stage_build = "staged", "new", "new"
    assert staging("new", views)[2]


def test_the_simulate_command_reads_its_flags():
    import argparse
    from gantry.sim import cli
    ap = argparse.ArgumentParser()
    cli.add_arguments(ap)
    a = ap.parse_args(["--hosts", "500", "--regions", "4", "--dcs-per-region", "1", "--size-gb", "2", "--nic-gbps", "25",
                       "--origin-gbps", "40", "--rtt-ms", "1,100,2", "--bake-s", "5", "--steps", "2,0.5,1.0",
                       "--region-waves", "0;1,2", "--fail-health", "0.01", "--lose", "0.005", "--store-down", "2:10:30",
                       "--seed", "9"])
    sc = cli.scenario(a)
    assert (sc.hosts, sc.regions, sc.dcs_per_region, sc.size_bytes) == (500, 4, 1, 2e9)
    assert sc.nic_bps == 25e9 / 8 and sc.origin_bps == 40e9 / 8
    assert (sc.rtt_dc_s, sc.rtt_region_s, sc.rtt_coord_s) == (0.001, 0.1, 0.002)
    assert sc.steps == (2, 0.5, 1.0) and sc.bake_s == 5 and sc.region_waves == [["r0"], ["r1", "r2"]]
    assert (sc.fail_health, sc.lose, sc.store_down, sc.seed) == (0.01, 0.005, (2, 10.0, 30.0), 9)


def test_the_simulate_command_prints_json_last(capsys):
    import argparse
    import json
    from gantry.sim import cli
    ap = argparse.ArgumentParser()
    cli.add_arguments(ap)
    assert cli.run(ap.parse_args(["--hosts", "40", "--regions", "2", "--dcs-per-region", "1", "--size-gb", "0.05",
                                  "--bake-s", "0", "--json"])) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"hosts", "regions", "sizeBytes", "status", "totalSeconds", "stageSeconds", "perRegion", "originBytes",
            "peerBytes", "crossRegionBytes", "peakControlMsgsPerS", "events", "wallSeconds"} <= set(last)
    assert last["status"] == "COMPLETED" and last["hosts"] == 40 and len(last["perRegion"]) == 2


@pytest.mark.parametrize("seed", [3, 4])
def test_a_target_set_while_a_host_moves_is_acted_on_when_the_move_ends(seed):
    """With a few failing and lost hosts a rollback can start while hosts still switch; each
    acts on the new target once its move ends (as the daemon does on its next report's answer)."""
    r = simulate(Scenario(hosts=2000, regions=10, dcs_per_region=2, size_bytes=1e9, bake_s=0, fail_health=0.01,
                          lose=0.005, max_s=3000, seed=seed))
    assert r["status"] in ("COMPLETED", "ROLLED_BACK") and r["totalSeconds"] < 3000



def test_a_slow_reader_does_not_hold_its_uploader_back():
    """A peer sends into the socket buffers at its upload share and frees its slot; the reader
    drains them at its own pace. One piece from a seed to a fast and a slow reader at once."""
    sc = flat(3, size_bytes=C)
    events = Events()
    net = Network(events)
    landed = {}
    swarm = Swarm(sc, events, net, Resource("store", B), random.Random(1), lambda: 0.0,
                  landed=lambda h: landed.setdefault(h.id, events.now), failed=lambda h: None)

    def host(hid, down):
        return SimpleNamespace(id=hid, rack="r", alive=True, up=Resource(f"{hid}/up", B),
                               down=Resource(f"{hid}/down", down), rack_up=None, rack_down=None,
                               uploads=0, download=None, lose_after=None)
    seed, fast, slow = host("seed", B), host("fast", B), host("slow", B / 8)
    for h in (seed, fast, slow):
        swarm.hosts[h.id] = h
    for h in (fast, slow):
        h.download = Download(1, random.Random(1), sc)
        h.download.plan.next(0.0)
        swarm._fetch(h, 0, "seed")
    freed = []
    events.at(2 * C / B + 1e-9, lambda: freed.append(seed.uploads))
    events.run(until=100)
    assert landed["fast"] == pytest.approx(2 * C / B)   # half the seed's upload
    assert freed == [0]                                  # both sent by then
    assert landed["slow"] == pytest.approx(8 * C / B)   # its own read rate
