"""The Redis store's atomic scripts, against a real redis-server (no Ray)."""
import pytest
import redis

from gantry.actors.build.monitor import HeartbeatMonitor
from gantry.state import State, TransitionRefused
from gantry.statuses import BuildStatus as S
from gantry.settings import Settings

SHA = "a" * 40


class Clock:
    def __init__(self, t=1_764_000_000_000):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(redis_url, clock):
    redis.Redis.from_url(redis_url).flushdb()
    return State(redis_url, clock=clock)


def test_claim_order_is_priority_then_fifo(store):
    ids = [store.builds.create("p", SHA, priority=p)["buildID"] for p in (5, 9, 5, 0, 9)]
    taken = [store.builds.claim_next(f"o{i}") for i in range(5)]
    assert taken == [ids[1], ids[4], ids[0], ids[2], ids[3]]
    assert store.builds.claim_next("o9") is None


def test_claim_skips_cancelled_builds(store):
    a = store.builds.create("p", SHA)["buildID"]
    b = store.builds.create("p", SHA)["buildID"]
    store.builds.transition(a, S.CANCELLED)
    assert store.builds.claim_next("o") == b
    assert store.builds.get(a)["buildStatus"] == "CANCELLED" and not store.builds.get(a).get("startedAt")


def test_lease_guards_worker_writes(store):
    b = store.builds.create("p", SHA)["buildID"]
    assert store.builds.claim_next("owner-1") == b
    with pytest.raises(TransitionRefused):
        store.builds.transition(b, S.DEPLOYING, lease_owner="owner-2")
    assert store.builds.check_in(b, "owner-2", heartbeat=True) == "LEASE_LOST"
    assert store.builds.check_in(b, "owner-1", heartbeat=True) == "BUILDING"
    store.builds.transition(b, S.DEPLOYING, lease_owner="owner-1", fields={"artifactDigest": "sha256:x"})
    rec = store.builds.get(b)
    assert rec["buildStatus"] == "DEPLOYING" and rec["leaseOwner"] == "" and b not in [
        r["buildID"] for r in store.builds.building()]


def test_illegal_transitions_are_refused_and_change_nothing(store):
    b = store.builds.create("p", SHA)["buildID"]
    before = store.builds.get(b)
    for to in (S.SUCCEEDED, S.DEPLOYING, S.DEAD):
        with pytest.raises(TransitionRefused) as e:
            store.builds.transition(b, to, fields={"error": "nope"})
        assert e.value.current == "QUEUED"
    assert store.builds.get(b) == before
    store.builds.transition(b, S.CANCELLED)
    with pytest.raises(TransitionRefused):
        store.builds.transition(b, S.CANCELLED)
    with pytest.raises(TransitionRefused):
        store.builds.transition("f" * 32, S.CANCELLED)


def test_pages_with_equal_timestamps_skip_and_repeat_nothing(store):
    ids = {store.builds.create("p", SHA)["buildID"] for _ in range(23)}  # all at the same ms
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.builds.page("p", 5, cursor)
        pages += 1
        seen += [b["buildID"] for b in page]
        if cursor is None:
            break
    assert pages == 5 and len(seen) == 23 and set(seen) == ids
    assert seen == sorted(ids, reverse=True)  # ties: newest-first order falls back to buildID


def test_pages_are_newest_first(store, clock):
    ids = []
    for i in range(4):
        clock.t += 1000
        ids.append(store.builds.create("p", SHA)["buildID"])
    page, cursor = store.builds.page("p", 3)
    assert [b["buildID"] for b in page] == ids[::-1][:3]
    page, cursor = store.builds.page("p", 3, cursor)
    assert [b["buildID"] for b in page] == [ids[0]] and cursor is None


def test_retry_backs_off_then_dead(store, clock):
    b = store.builds.create("p", SHA)["buildID"]
    s = Settings(max_retries=2, retry_backoff_s=10)
    for attempt in range(2):
        assert store.builds.claim_next(f"o{attempt}") == b
        assert store.builds.retry_or_dead(store.builds.get(b), "lost", s.max_retries, s.retry_backoff_s, 300) is S.QUEUED
        assert store.builds.claim_next("early") is None        # backing off
        store.builds.promote_due()
        assert store.builds.claim_next("early") is None
        clock.t += 10_000 * 2 ** attempt
        store.builds.promote_due()
    assert store.builds.claim_next("last") == b
    assert store.builds.retry_or_dead(store.builds.get(b), "lost", s.max_retries, s.retry_backoff_s, 300) is S.DEAD
    rec = store.builds.get(b)
    assert rec["buildStatus"] == "DEAD" and rec["retries"] == "2" and rec["error"] == "lost"


def test_monitor_requeues_silent_builds_only(store, clock):
    silent = store.builds.create("p", SHA)["buildID"]
    alive = store.builds.create("p", SHA)["buildID"]
    store.builds.claim_next("o1"), store.builds.claim_next("o2")
    for b, owner in ((silent, "o1"), (alive, "o2")):   # each worker begins its attempt
        store.builds.set_fields(b, {"attempt": owner})
    mon = HeartbeatMonitor(store.builds, Settings(heartbeat_s=1, retry_backoff_s=0))
    clock.t += 2500
    store.builds.check_in(alive, "o2", heartbeat=True)
    assert mon.sweep() == []
    clock.t += 600
    assert mon.sweep() == [(silent, "QUEUED")]
    rec = store.builds.get(silent)
    assert rec["retries"] == "1" and "no heartbeat" in rec["error"] and rec["leaseOwner"] == ""
    assert store.builds.get(alive)["buildStatus"] == "BUILDING"


def test_an_attempt_whose_worker_has_not_begun_gets_the_start_grace_not_the_heartbeat(store, clock):
    """A Ray worker process can take seconds to start on a loaded builder: a lease its worker has
    not begun is lost only after worker_start_s, then like any other lost attempt."""
    b = store.builds.create("p", SHA)["buildID"]
    store.builds.claim_next("o1")
    mon = HeartbeatMonitor(store.builds, Settings(heartbeat_s=1, worker_start_s=20, retry_backoff_s=0))
    clock.t += 19_000   # 19 heartbeats missed, but the attempt has not begun
    assert mon.sweep() == []
    clock.t += 2000
    assert mon.sweep() == [(b, "QUEUED")]
    assert "did not begin within 20s" in store.builds.get(b)["error"]
    store.builds.promote_due()
    assert store.builds.claim_next("o2") == b
    store.builds.set_fields(b, {"attempt": "o2"})   # the retry's worker began: the heartbeat rules again
    clock.t += 3100
    assert mon.sweep() == [(b, "QUEUED")]
    assert "no heartbeat for 3s" in store.builds.get(b)["error"]


def test_log_is_capped(store):
    b = store.builds.create("p", SHA)["buildID"]
    store.logs.append(b, "x" * 80, cap=100)
    store.logs.append(b, "y" * 80, cap=100)
    store.logs.append(b, "z" * 80, cap=100)
    log = store.logs.read(b).decode()
    assert log.startswith("x" * 80 + "y" * 20) and "[log truncated]" in log and "z" not in log
