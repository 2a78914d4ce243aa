import random

from gantry.actors.rollout.tracker import Tracker

A = "blake3:" + "a" * 64


def tracker(max_peers=4):
    return Tracker(max_peers=max_peers, seed_share=0.5, rng=random.Random(3))


def test_never_offers_a_host_itself_and_respects_the_bound():
    t = tracker()
    for i in range(20):
        t.announce(A, f"h{i}", f"10.0.0.{i}:7000", {"c1", "c2"}, complete=i < 10, now=0)
    for _ in range(20):
        peers = t.peers(A, "h3", {"c1"})
        assert len(peers) == 4 and "h3" not in {p.host for p in peers}


def test_seeds_first_then_partial_peers_holding_wanted_chunks():
    t = tracker()
    t.announce(A, "seed1", "s1", {"c1", "c2", "c3"}, complete=True, now=0)
    t.announce(A, "seed2", "s2", {"c1", "c2", "c3"}, complete=True, now=0)
    t.announce(A, "seed3", "s3", {"c1", "c2", "c3"}, complete=True, now=0)
    t.announce(A, "p1", "p1", {"c2"}, complete=False, now=0)
    t.announce(A, "p2", "p2", {"c9"}, complete=False, now=0)   # holds nothing we want
    t.announce(A, "p3", "p3", {"c2", "c3"}, complete=False, now=0)
    peers = t.peers(A, "me", {"c2"})
    hosts = [p.host for p in peers]
    assert len(hosts) == 4 and set(hosts[:2]) <= {"seed1", "seed2", "seed3"}
    assert "p2" not in hosts and {"p1", "p3"} == set(hosts[2:])


def test_fills_with_seeds_when_partial_peers_are_few():
    t = tracker()
    for i in range(5):
        t.announce(A, f"seed{i}", f"s{i}", {"c1"}, complete=True, now=0)
    assert len(t.peers(A, "me", {"c1"})) == 4


def held(t, artifact):
    return {h: len(p.chunks) for h, p in t.swarms.get(artifact, {}).items()}


def test_bookkeeping_replaces_announces_and_expires_silent_hosts():
    t = tracker()
    t.announce(A, "h1", "a1", {"c1"}, complete=False, now=0)
    t.announce(A, "h1", "a1b", {"c1", "c2"}, complete=True, now=5)
    t.announce(A, "h2", "a2", {"c1"}, complete=False, now=1)
    assert held(t, A) == {"h1": 2, "h2": 1}
    assert t.peers(A, "me", {"c2"})[0].address == "a1b"
    assert t.expire(now=12, ttl=10) == 1
    assert held(t, A) == {"h1": 2}
    assert t.peers("blake3:" + "b" * 64, "me", {"c1"}) == []


def test_a_host_that_moved_to_another_artifact_leaves_the_old_swarm_and_empty_swarms_go():
    t, B = tracker(), "blake3:" + "b" * 64
    for now in range(0, 30, 5):   # h1 keeps reporting, about B from t=10 on
        t.announce(A if now < 10 else B, "h1", "a1", {"c1"}, complete=True, now=now)
        t.expire(now, ttl=10)
    assert set(t.swarms) == {B} and held(t, B) == {"h1": 1}
    t.forget("h1")
    assert t.swarms == {}


def test_peer_map_says_who_holds_which_chunk():
    t = tracker(max_peers=8)
    t.announce(A, "seed", "s:1", {"c1", "c2"}, complete=True, now=0)
    t.announce(A, "p1", "p:1", {"c2"}, complete=False, now=0)
    m = t.peer_map(A, "me", {"c1", "c2", "c3"})
    assert sorted(m["c2"]) == ["p:1", "s:1"] and m["c1"] == ["s:1"] and m["c3"] == ["s:1"]
