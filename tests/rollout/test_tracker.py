"""The tracker's peer policy, its bitfield bookkeeping, rack preference and origin assignment."""
import random

from gantry.rollout.tracker import Tracker
from gantry.artifacts import bitfield

A = "blake3:" + "a" * 64
C1, C2, C3, C9 = 1 << 1, 1 << 2, 1 << 3, 1 << 9


def tracker(max_peers=4, **kw):
    return Tracker(max_peers=max_peers, seed_share=0.5, rng=random.Random(3), **kw)


def test_never_offers_a_host_itself_and_respects_the_bound():
    t = tracker()
    for i in range(20):
        t.announce(A, f"h{i}", f"10.0.0.{i}:7000", C1 | C2, complete=i < 10, now=0)
    for _ in range(20):
        peers = t.peers(A, "h3", C1)
        assert len(peers) == 4 and "h3" not in {p.host for p in peers}


def test_seeds_first_then_partial_peers_holding_wanted_chunks():
    t = tracker()
    for s in ("seed1", "seed2", "seed3"):
        t.announce(A, s, s, C1 | C2 | C3, complete=True, now=0)
    t.announce(A, "p1", "p1", C2, complete=False, now=0)
    t.announce(A, "p2", "p2", C9, complete=False, now=0)   # holds nothing we want
    t.announce(A, "p3", "p3", C2 | C3, complete=False, now=0)
    hosts = [p.host for p in t.peers(A, "me", C2)]
    assert len(hosts) == 4 and set(hosts[:2]) <= {"seed1", "seed2", "seed3"}
    assert "p2" not in hosts and {"p1", "p3"} == set(hosts[2:])


def test_fills_with_seeds_when_partial_peers_are_few():
    t = tracker()
    for i in range(5):
        t.announce(A, f"seed{i}", f"s{i}", C1, complete=True, now=0)
    assert len(t.peers(A, "me", C1)) == 4


def test_peers_in_the_askers_rack_come_first():
    t = tracker(max_peers=2)
    for i in range(10):
        t.announce(A, f"far{i}", f"f{i}", C1, complete=False, now=0, rack="r2")
    t.announce(A, "near", "n", C1, complete=False, now=0, rack="r1")
    t.announce(A, "near2", "n2", C1, complete=False, now=0, rack="r1")
    t.announce(A, "me", "m", 0, complete=False, now=0, rack="r1")
    for _ in range(10):
        assert {p.host for p in t.peers(A, "me", C1)} == {"near", "near2"}
    t.announce(A, "me", "m", 0, complete=False, now=0)   # no rack: any peer
    assert any(p.host.startswith("far") for _ in range(10) for p in t.peers(A, "me", C1))


def held(t, artifact):
    return {h: bin(p.bits).count("1") for h, p in t.swarms[artifact].peers.items()} if artifact in t.swarms else {}


def test_announces_replace_deltas_add_and_silent_hosts_expire():
    t = tracker()
    t.announce(A, "h1", "a1", C1, complete=False, now=0)
    assert t.add(A, "h1", C2, complete=True, now=5)
    assert not t.add(A, "nobody", C2, complete=False, now=5)   # no whole bitfield yet: ask for one
    t.announce(A, "h2", "a2", C1, complete=False, now=1)
    assert held(t, A) == {"h1": 2, "h2": 1}
    assert t.peer_bits(A, "me", C2) == [("a1", C2)]
    assert t.expire(now=12, ttl=10) == 1
    assert held(t, A) == {"h1": 2}
    t.announce(A, "h1", "a1", C1, complete=False, now=12)   # a whole bitfield replaces (a pruned chunk)
    assert held(t, A) == {"h1": 1} and t.peers("blake3:" + "b" * 64, "me", C1) == []


def test_a_host_that_moved_to_another_artifact_leaves_the_old_swarm_and_empty_swarms_go():
    t, B = tracker(), "blake3:" + "b" * 64
    for now in range(0, 30, 5):   # h1 keeps reporting, about B from t=10 on
        t.announce(A if now < 10 else B, "h1", "a1", C1, complete=True, now=now)
        t.expire(now, ttl=10)
    assert set(t.swarms) == {B} and held(t, B) == {"h1": 1}
    t.forget("h1")
    assert t.swarms == {}


def test_the_origin_sends_each_chunk_once_a_few_at_a_time():
    n = 40
    t = tracker(origin_slots=4)
    for h in range(8):
        t.announce(A, f"h{h}", f"a{h}", 0, complete=False, now=0)
    given = [t.assign_origin(A, f"h{h}", bitfield.full(n), now=0, limit=2) for h in range(8)]
    assert sum(bin(g).count("1") for g in given) == 4        # the origin's slots
    union = 0
    for g in given:
        assert not union & g    # nobody is handed a chunk someone else fetches
        union |= g
    # a chunk that landed frees its slot; a chunk someone holds is never handed out
    first = next(h for h, g in enumerate(given) if g)
    t.add(A, f"h{first}", given[first], complete=False, now=1)
    again = t.assign_origin(A, "h7", bitfield.full(n), now=1, limit=4)
    assert again and not again & given[first] and not again & union
    # an assignment that did not land in time goes to the next asker
    late = t.assign_origin(A, "h6", bitfield.full(n) & ~t.swarms[A].held, now=100, limit=4)
    assert bin(late).count("1") == 4


def test_bitfields_round_trip_and_refuse_chunks_beyond_the_artifact():
    import pytest
    bits = bitfield.of([0, 5, 4999])
    assert bitfield.decode(bitfield.encode(bits), 5000) == bits and bitfield.indexes(bits) == [0, 5, 4999]
    assert len(bitfield.encode(bitfield.full(5000))) < 900   # 1 bit a chunk
    with pytest.raises(bitfield.BadBitfield):
        bitfield.decode(bitfield.encode(bits), 4999)
    with pytest.raises(bitfield.BadBitfield):
        bitfield.decode("not base64!")


def _big_swarm(t, n=5000, rare=7):
    """n partial peers holding chunk 0; two of them (announced by delta) also hold `rare`."""
    for i in range(n):
        t.announce(A, f"p{i}", f"p{i}", 1, complete=False, now=0)
    for host in ("p100", "p4000"):
        t.add(A, host, 1 << rare, complete=False, now=0)


def test_a_chunk_few_partial_peers_hold_is_in_every_answer_that_wants_it():
    t = Tracker(max_peers=8, rng=random.Random(5))
    _big_swarm(t)
    for q in range(200):   # 32 draws of 5,000 would find one of the two about once in 40 queries
        hosts = {p.host for p in t.peers(A, f"asker{q}", 1 | 1 << 7)}
        assert hosts & {"p100", "p4000"}, q
        assert len(hosts) <= 8


def test_a_holder_that_lost_the_chunk_or_left_is_not_offered_for_it():
    t = Tracker(max_peers=8, rng=random.Random(5))
    _big_swarm(t)
    t.distrust(A, "p100", now=1)      # its claims are gone
    t.forget("p4000")
    assert not {p.host for p in t.peers(A, "asker", 1 << 7)} & {"p100", "p4000"}
    t.add(A, "p7", 1 << 7, complete=False, now=2)   # the next holder takes the freed room
    assert "p7" in {p.host for p in t.peers(A, "asker", 1 << 7)}


def test_a_chunks_holder_list_is_bounded():
    from gantry.rollout.tracker import HOLDERS
    t = Tracker(max_peers=8, rng=random.Random(5))
    for i in range(HOLDERS + 10):
        t.announce(A, f"p{i}", f"p{i}", C1, complete=False, now=0)
    assert len(t.swarms[A].holders[1]) == HOLDERS


def test_a_full_holder_list_whose_holders_left_makes_room_again():
    from gantry.rollout.tracker import HOLDERS
    t = Tracker(max_peers=8, rng=random.Random(5))
    _big_swarm(t, rare=1)   # chunk 0 held by all; chunk 1 by two
    for i in range(HOLDERS):
        t.add(A, f"p{i}", 1 << 7, complete=False, now=0)
    for i in range(HOLDERS):
        t.forget(f"p{i}")
    t.add(A, "p4999", 1 << 7, complete=False, now=1)
    assert all("p4999" in {p.host for p in t.peers(A, f"asker{q}", 1 << 7)} for q in range(20))


def test_a_rare_chunk_is_named_even_when_the_answer_gives_plenty_else():
    t = Tracker(max_peers=8, rng=random.Random(5))
    many = bitfield.full(20)
    for i in range(5000):
        t.announce(A, f"p{i}", f"p{i}", many, complete=False, now=0)
    for host in ("p100", "p4000"):
        t.add(A, host, 1 << 30, complete=False, now=0)
    for q in range(100):
        assert {p.host for p in t.peers(A, f"asker{q}", many | 1 << 30)} & {"p100", "p4000"}, q
