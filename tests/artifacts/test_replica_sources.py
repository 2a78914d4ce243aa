"""Replication as a tree: who a new replica copies from."""
from collections import Counter

from gantry.artifacts.replica_sources import fanout_for, pick


def test_a_replica_is_preferred_to_the_primary_and_load_is_spread():
    assert pick(["p"], Counter(), 1, "p") == "p"                       # only the primary holds it
    assert pick(["p", "r1"], Counter(), 1, "p") == "r1"                 # the primary also serves its hosts
    assert pick(["p", "r1"], Counter({"r1": 1}), 1, "p") == "p"
    assert pick(["p", "r1", "r2"], Counter({"r1": 1}), 2, "p") == "r2"  # the least busy first
    assert pick(["p", "r1"], Counter({"p": 1, "r1": 1}), 1, "p") is None   # everyone busy: wait


def test_fanout_follows_egress_over_link():
    assert fanout_for(10e9, 10e9) == 1 and fanout_for(40e9, 10e9) == 4 and fanout_for(1e9, 10e9) == 1


def test_ten_regions_copy_in_four_rounds_not_nine():
    """Rounds of equal copies with fanout 1: holders double each round."""
    holders, waiting, rounds = ["p"], [f"r{i}" for i in range(9)], 0
    while waiting:
        serving, started = Counter(), []
        while waiting and (src := pick(holders, serving, 1, "p")) is not None:
            serving[src] += 1
            started.append(waiting.pop(0))
        holders += started
        rounds += 1
    assert rounds == 4
