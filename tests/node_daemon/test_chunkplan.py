"""The downloader's chunk order and origin deferral (shared by the daemon and the simulator)."""
import random

from gantry.node_daemon.chunkplan import ChunkPlan


def plan(n=5, **kw):
    return ChunkPlan(range(n), random.Random(1), **kw)


def test_every_chunk_once_in_a_random_order_then_done():
    p = plan(20)
    got = [p.next(0.0)[0] for _ in range(20)]
    assert sorted(got) == list(range(20)) and got != list(range(20))
    assert p.next(0.0) == (None, True)      # all in flight: not over yet
    for k in got:
        assert p.land(k)
    assert p.done and p.next(0.0) == (None, False)


def test_a_parked_chunk_comes_back_when_due_and_only_after_the_rest():
    p = plan(2)
    a, _ = p.next(0.0)
    p.park(a, 1.0)
    b, _ = p.next(0.0)
    assert b != a
    assert p.next(0.5) == (None, True)      # a not due yet, b in flight (not slow)
    assert p.next(1.0) == (a, False)


def test_origin_only_when_handed_or_after_waiting_long():
    p = plan(3, origin_after_s=60.0)
    assert not p.origin_now(0, 0.0, set())
    assert p.origin_now(0, 1.0, {0})
    assert not p.origin_now(1, 0.0, set()) and p.origin_now(1, 61.0, set())


def test_tracker_silent_puts_a_chunk_back_once():
    p = plan(1)
    assert not p.origin_now(0, 0.0, None)
    assert p.origin_now(0, 0.1, None)


def test_handed_chunks_go_first_even_when_parked():
    p = plan(6)
    first, _ = p.next(0.0)
    p.park(first, 5.0)
    last = p.todo[-1]
    p.first([first, last])
    assert p.next(0.0)[0] == last and p.next(0.0)[0] == first


def test_endgame_takes_the_oldest_slow_chunk_and_counts_it_once():
    p = plan(2, endgame_s=2.0)
    a, _ = p.next(0.0)
    b, _ = p.next(1.0)
    assert p.next(1.5) == (None, True)
    assert p.next(2.5) == (a, True)
    assert p.land(a) and not p.land(a)      # the copy that lost the race counts nothing
    assert p.next(3.5) == (b, True)
