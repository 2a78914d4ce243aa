"""The coordinator's host cache on a real Redis: it reads only the hosts written since it last
read, misses no write, and reads everything again when Redis went back in time."""
import pytest
import redis

from gantry.records import HostView
from gantry.state import State, keys
from gantry.state.host_cache import HostCache


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    return client


def commands(r) -> int:
    return sum(v["calls"] for k, v in r.info("commandstats").items() if k != "cmdstat_info")


def fleet(state: State, n: int) -> None:
    for i in range(n):
        state.hosts.report(f"h{i}", "us", "us-a", {"address": f"10.0.0.{i}:7"}, {"web": {"state": "active", "about": "b1"}},
                           serving=["web"] if i % 2 else None)


def test_reads_only_what_changed(redis_url, r):
    state = State(redis_url)
    fleet(state, 20)
    cache = HostCache(state.r, "us-a")
    assert [h["hostID"] for h in cache.in_dc()] == sorted(f"h{i}" for i in range(20))
    assert len(cache.views("web")) == 20 and cache.hosts_read == 40   # 20 records, 20 records for web
    before = commands(state.r)
    for _ in range(5):   # nothing changed: two commands a step, no host read
        cache.in_dc()
        cache.views("web")
    assert commands(state.r) - before == 10 and cache.hosts_read == 40

    state.hosts.set_target("us-a", "h3", "web", "b2")    # each kind of write is seen, for that host alone
    state.hosts.report("h4", "us", "us-a", {"address": "10.0.0.4:7"}, {"web": {"state": "downloading", "about": "b2"}})
    state.hosts.mark_lost("us-a", "h5")
    state.hosts.mark_stage_late("us-a", "h6", "web", "b2")
    state.hosts.note("us-a", "h7", "distrusted", "lied")
    state.hosts.report("h8", "us", "us-a", {"address": "10.0.0.8:7"}, {}, serving=["shop"])   # leaves web
    hosts = {h["hostID"]: h for h in cache.in_dc()}
    views = cache.views("web")
    assert cache.hosts_read == 40 + 6 + 5   # 6 records, and 5 records for web (h8 no longer serves it)
    assert views["h3"].target_build == "b2" and views["h4"].state == "downloading"
    assert views["h5"].state == "lost" and hosts["h5"]["state"] == "lost"
    assert views["h6"].stage_late == "b2" and hosts["h7"]["distrusted"] == "lied" and "h8" not in views
    fresh = HostCache(state.r, "us-a")
    fresh.in_dc()
    assert views == fresh.views("web") and all(isinstance(v, HostView) for v in views.values())


def test_a_redis_that_went_back_in_time_is_read_again(redis_url, r):
    state = State(redis_url)
    fleet(state, 3)
    cache = HostCache(state.r, "us-a")
    cache.in_dc()
    r.flushall()   # Redis restored from an older copy: the sequence is lower than the cache's
    fleet(state, 2)
    assert [h["hostID"] for h in cache.in_dc()] == ["h0", "h1"]


def test_records_written_straight_into_redis_are_read_once_touched(redis_url, r):
    state = State(redis_url)
    fleet(state, 2)
    cache = HostCache(state.r, "us-a")
    cache.in_dc()
    r.hset(keys.host("us-a", "h0"), "address", "10.9.9.9:7")   # a benchmark's fleet, written directly
    assert cache.in_dc()[0]["address"] == "10.0.0.0:7"      # not told: not read
    state.hosts.touched("us-a", ["h0"])
    assert cache.in_dc()[0]["address"] == "10.9.9.9:7"
