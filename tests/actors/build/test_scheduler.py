"""Scheduler logic with a stand-in for the store's queue (the real store is tested against Redis)."""
from gantry.actors.build.scheduler import Scheduler, Size, best_fit
from gantry.statuses import BuildStatus
from gantry.settings import Settings

SMALL, BIG = Size(1, 256), Size(2, 512)


class QueueOnly:
    def __init__(self, queued):
        self.queue = list(queued)        # (buildID, size), in queue order
        self.records, self.retried, self.failed = {}, [], {}

    def promote_due(self):
        return 0

    def queued(self, limit):
        return [{"buildID": b, "size": size} for b, size in self.queue[:limit]]

    def claim(self, build_id, owner):
        if build_id not in [b for b, _ in self.queue]:
            return False
        self.queue = [(b, s) for b, s in self.queue if b != build_id]
        self.records[build_id] = {"buildID": build_id, "leaseOwner": owner, "retries": "0"}
        return True

    def transition(self, build_id, to, lease_owner, fields):
        assert self.records[build_id]["leaseOwner"] == lease_owner
        self.failed[build_id] = fields["error"]

    def get(self, build_id):
        return self.records.get(build_id)

    def retry_or_dead(self, rec, reason, *args):
        self.retried.append((rec["buildID"], reason))
        return BuildStatus.QUEUED


class Cluster:
    """Builder nodes whose room is what the builds placed on them leave."""

    def __init__(self, **sizes):
        self.whole = sizes
        self.running: dict[str, tuple[str, Size]] = {}   # build -> (node, size)

    def nodes(self):
        room = dict(self.whole)
        for node, size in self.running.values():
            room[node] = room[node] - size
        return {n: (self.whole[n], room[n]) for n in self.whole}

    def dispatch(self, build_id, owner, node, size):
        self.running[build_id] = (node, size)


def scheduler(store, cluster, clock=lambda: 0.0, backfill_s=60.0, oversize_wait_s=120.0, notes=None):
    return Scheduler(store, Settings(build_backfill_s=backfill_s, build_oversize_wait_s=oversize_wait_s),
                     cluster.nodes, cluster.dispatch, lambda rec: rec["size"], clock,
                     lambda build_id, line: notes.append((build_id, line)) if notes is not None else None)


def test_a_builder_runs_as_many_builds_as_its_cpus_hold_in_queue_order():
    store, cluster = QueueOnly([("a", SMALL), ("b", SMALL), ("c", SMALL)]), Cluster(n1=BIG)
    s = scheduler(store, cluster)
    assert s.tick() == ["a", "b"] and [b for b, _ in store.queue] == ["c"]
    assert s.tick() == []
    del cluster.running["a"]
    assert s.tick() == ["c"]


def test_a_build_goes_where_it_fits_most_tightly():
    assert best_fit(SMALL, {"roomy": Size(4, 4096), "tight": Size(1, 300)}) == "tight"
    assert best_fit(BIG, {"roomy": Size(4, 4096), "tight": Size(1, 300)}) == "roomy"
    assert best_fit(Size(1, 8192), {"roomy": Size(4, 4096)}) is None


def test_small_builds_pass_a_big_one_only_for_the_backfill_time():
    now = [0.0]
    store = QueueOnly([("big", BIG), ("s1", SMALL), ("s2", SMALL), ("s3", SMALL)])
    cluster = Cluster(n1=BIG)
    cluster.running["old"] = ("n1", SMALL)
    s = scheduler(store, cluster, clock=lambda: now[0])
    assert s.tick() == ["s1"]                 # big fits nowhere yet; s1 takes the room there is
    del cluster.running["old"]
    now[0] = 30
    assert s.tick() == ["s2"]                 # still within the backfill time
    del cluster.running["s1"]
    now[0] = 61
    assert s.tick() == []                     # big has waited long enough: s3 may not pass it
    del cluster.running["s2"]
    assert s.tick() == ["big"]
    del cluster.running["big"]
    assert s.tick() == ["s3"]


def test_a_build_no_builder_can_hold_waits_then_fails_with_the_reason_and_holds_nothing_back():
    now = [0.0]
    store = QueueOnly([("huge", Size(16, 256)), ("a", SMALL), ("b", SMALL), ("c", SMALL)])
    cluster, notes = Cluster(n1=BIG, n2=SMALL), []
    s = scheduler(store, cluster, clock=lambda: now[0], notes=notes)
    assert s.tick() == ["a", "b", "c"] and store.failed == {}   # waiting, and passed by all
    assert notes == [("huge", "waiting up to 120 s for a builder with 16 cpus and 256 MB: "
                              "the largest builder has 2 cpus and 512 MB")]
    now[0] = 119
    assert s.tick() == [] and store.failed == {}
    now[0] = 120
    s.tick()
    assert store.failed == {"huge": "needs 16 cpus and 256 MB; the largest builder has 2 cpus and 512 MB "
                                    "(waited 120 s for a larger one)"}


def test_a_build_too_big_for_now_starts_when_its_builder_is_back():
    now = [0.0]
    store, cluster = QueueOnly([("big", BIG)]), Cluster(n1=SMALL)
    s = scheduler(store, cluster, clock=lambda: now[0])
    assert s.tick() == []
    now[0] = 100
    cluster.whole["n2"] = BIG            # the big builder restarted
    assert s.tick() == ["big"] and store.failed == {}


def test_no_builders_means_wait_not_fail():
    store = QueueOnly([("a", SMALL)])
    assert scheduler(store, Cluster()).tick() == [] and store.failed == {} and len(store.queue) == 1


def test_each_dispatch_gets_its_own_lease():
    store, cluster = QueueOnly([("a", SMALL), ("b", SMALL)]), Cluster(n1=BIG)
    scheduler(store, cluster).tick()
    assert len({store.records[b]["leaseOwner"] for b in ("a", "b")}) == 2


def test_crash_of_a_stale_attempt_is_ignored():
    store, cluster = QueueOnly([("a", SMALL)]), Cluster(n1=BIG)
    s = scheduler(store, cluster)
    s.tick()
    s.attempt_crashed("a", "someone-else", "lost")
    assert store.retried == []
    s.attempt_crashed("a", store.records["a"]["leaseOwner"], "lost")
    assert store.retried == [("a", "lost")]
