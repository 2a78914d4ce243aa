"""The coordinator's soft state of its hosts: when a report is written, the report interval, and
the version a waiting host is woken by."""
from gantry.rollout.hostmemory import HostMemory, is_moving, report_interval

ACTIVE_B1 = {"web": {"state": "active", "activeBuildID": "b1", "ackedTargetBuildID": "b1"}}


def test_a_host_is_moving_while_it_downloads_or_has_a_target_or_stage_still_to_reach():
    assert not is_moving(ACTIVE_B1, {"web": ("b1", "")})
    assert is_moving(ACTIVE_B1, {"web": ("b2", "")})                      # a new target
    assert is_moving(ACTIVE_B1, {"web": ("b1", "b2")})                    # a build to stage
    staged = {"web": {"state": "staged", "activeBuildID": "b1", "ackedTargetBuildID": "b2"}}
    assert not is_moving(staged, {"web": ("b1", "b2")})                   # staged: waiting for its wave
    failed = {"web": {"state": "failed", "activeBuildID": "b1", "ackedTargetBuildID": "b2"}}
    assert not is_moving(failed, {"web": ("b2", "b2")})                   # failed: nothing more to do
    assert is_moving({"web": {"state": "downloading", "activeBuildID": "b1"}}, {})
    assert is_moving({}, {"shop": ("s1", "")})                            # a project it has not reported yet
    assert report_interval(True, 0.5, 10) == 0.5 and report_interval(False, 0.5, 10) == 10


def test_only_transitions_targets_and_refreshes_are_written():
    m = HostMemory(refresh_s=30)
    assert m.needs_write("h", ("r1",), now=0)                 # unknown: write
    m.wrote("h", ("r1",), {"web": ("b1", "")}, version=0, now=0)
    assert not m.needs_write("h", ("r1",), now=5)             # the same report: memory only
    assert m.needs_write("h", ("r2",), now=6)                 # a new state: write
    m.wrote("h", ("r2",), {"web": ("b1", "")}, version=0, now=6)
    m.set("h", "web", target="b2")                            # a new target: the next report notes it was sent
    assert m.needs_write("h", ("r2",), now=7)
    m.wrote("h", ("r2",), {"web": ("b2", "")}, version=m.version("h"), now=7)
    assert not m.needs_write("h", ("r2",), now=8)
    assert m.needs_write("h", ("r2",), now=7 + 30 * 1.25)     # a refresh keeps Redis's updatedAt near
    m.mark_lost("h")
    assert m.needs_write("h", ("r2",), now=100)               # back from lost: written at once


def test_a_target_set_while_a_report_was_written_is_kept_and_wakes_the_host():
    woken = []
    m = HostMemory(on_change=lambda host, version: woken.append((host, version)))
    m.needs_write("h", ("r",), now=0)
    v = m.version("h")
    m.wrote("h", ("r",), {"web": ("b1", "")}, version=v, now=0)
    v = m.version("h")
    m.set("h", "web", stage="b2")                             # set while a report was in flight...
    m.wrote("h", ("r",), {"web": ("b1", "")}, version=v, now=1)   # ...whose script read the older targets
    assert m.targets("h") == {"web": ("b1", "b2")} and woken == [("h", 1)]
    assert m.lost_after(15) == 30 and m.lost_after(60) == 60  # never before three idle intervals
