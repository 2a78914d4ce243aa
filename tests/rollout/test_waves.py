import pytest

from gantry.rollout.waves import DEFAULT_STEPS, Strategy, gate_failed_already, gate_passes, plan_waves


def hosts(n):
    return [f"h{i:03d}" for i in range(n)]


@pytest.mark.parametrize("n,sizes", [
    (1, [1]), (2, [1, 1]), (4, [1, 1, 2]), (10, [1, 4, 5]), (100, [1, 9, 40, 50]), (0, []),
])
def test_canary_then_10_50_100_percent(n, sizes):
    waves = plan_waves(hosts(n), DEFAULT_STEPS)
    assert [len(w) for w in waves] == sizes
    assert sum(waves, []) == hosts(n)   # every host exactly once, in order


def test_immediate_strategy_is_one_wave():
    assert plan_waves(hosts(7), Strategy.immediate().steps) == [hosts(7)]


def test_health_gate_arithmetic():
    assert gate_passes(9, 1, 10, 0.9) and not gate_passes(8, 2, 10, 0.9)
    assert gate_passes(1, 0, 1, 0.9) and not gate_passes(0, 1, 1, 0.9)
    assert gate_passes(0, 0, 0, 0.9)
    assert not gate_failed_already(1, 10, 0.9) and gate_failed_already(2, 10, 0.9)
    assert gate_failed_already(1, 1, 0.9)


def test_region_waves_default_to_the_first_region_then_the_rest_and_keep_left_out_regions_last():
    from gantry.rollout.waves import earlier_regions, region_waves
    regions = ["us-east", "eu-west", "ap-south"]
    assert region_waves(regions) == [["us-east"], ["eu-west", "ap-south"]]
    assert region_waves(["us-east"]) == [["us-east"]]
    assert region_waves(regions, [["eu-west"]]) == [["eu-west"], ["us-east", "ap-south"]]
    waves = region_waves(regions, [["ap-south", "us-east"], ["eu-west"]])
    assert earlier_regions(waves, "us-east") == [] and earlier_regions(waves, "eu-west") == ["ap-south", "us-east"]
    assert earlier_regions(waves, "mars") is None


def test_the_cli_reads_region_waves_and_stage():
    import argparse
    from gantry.cluster.commands import _strategy
    a = argparse.Namespace(steps="1,1.0", bake=0.0, min_healthy=None, stage="wave", region_waves="us-east; eu-west, ap-south")
    assert _strategy(a) == {"steps": [1, 1.0], "bakeS": 0.0, "stage": "wave",
                            "regionWaves": [["us-east"], ["eu-west", "ap-south"]]}
