"""Scheduler logic with a stand-in for the store's queue (the real store is tested against Redis)."""
from gantry.actors.build.scheduler import Scheduler
from gantry.statuses import BuildStatus
from gantry.settings import Settings


class QueueOnly:
    def __init__(self, queued, building=()):
        self.queued, self.running = list(queued), list(building)
        self.records, self.retried = {}, []

    def promote_due(self):
        return 0

    def building(self):
        return [{"buildID": b} for b in self.running]

    def claim_next(self, owner):
        if not self.queued:
            return None
        b = self.queued.pop(0)
        self.running.append(b)
        self.records[b] = {"buildID": b, "leaseOwner": owner, "retries": "0"}
        return b

    def get(self, build_id):
        return self.records.get(build_id)

    def retry_or_dead(self, rec, reason, *args):
        self.retried.append((rec["buildID"], reason))
        return BuildStatus.QUEUED


def test_fills_only_free_builder_slots():
    store, started = QueueOnly(["a", "b", "c"], building=["x"]), []
    s = Scheduler(store, Settings(), capacity=lambda: 3, dispatch=lambda b, o: started.append(b))
    assert s.tick() == ["a", "b"] and started == ["a", "b"] and store.queued == ["c"]
    assert s.tick() == []


def test_each_dispatch_gets_its_own_lease():
    store, owners = QueueOnly(["a", "b"]), []
    Scheduler(store, Settings(), lambda: 2, lambda b, o: owners.append(o)).tick()
    assert len(set(owners)) == 2


def test_crash_of_a_stale_attempt_is_ignored():
    store = QueueOnly(["a"])
    s = Scheduler(store, Settings(), lambda: 1, lambda b, o: None)
    s.tick()
    s.attempt_crashed("a", "someone-else", "lost")
    assert store.retried == []
    s.attempt_crashed("a", store.records["a"]["leaseOwner"], "lost")
    assert store.retried == [("a", "lost")]
